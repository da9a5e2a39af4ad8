import { describe, expect, it } from "vitest";

import {
  compareDecimal,
  decimalsOf,
  formatDecimal,
  formatUnits,
  isPlainDecimal,
  isZero,
  percentChange,
  permille,
  toUnits,
} from "../src/decimal";

describe("decimal strings", () => {
  it("counts the decimals of a tick or lot", () => {
    expect(decimalsOf("1.00")).toBe(2);
    expect(decimalsOf("0.00001000")).toBe(8);
    expect(decimalsOf("5")).toBe(0);
  });

  it("reads a decimal exactly into units, beyond what a float holds", () => {
    expect(toUnits("45000000.00", 2)).toBe(4500000000n);
    expect(toUnits("0.1", 8)).toBe(10000000n);
    expect(toUnits("92233720368547758.07", 2)).toBe(9223372036854775807n);
    expect(toUnits("-200000.00", 2)).toBe(-20000000n);
    expect(toUnits("0", 8)).toBe(0n);
  });

  it("refuses anything but a plain decimal, and decimals it would have to round", () => {
    for (const bad of ["1e3", "", ".5", "5.", "1_0", " 1", "0x10", "1.2.3", "١"]) {
      expect(() => toUnits(bad, 2)).toThrow(/plain decimal/);
    }
    expect(() => toUnits("1.005", 2)).toThrow(/more than 2 decimals/);
    expect(toUnits("1.0000", 2)).toBe(100n);
    expect(isPlainDecimal("45000000")).toBe(true);
    expect(isPlainDecimal("-1")).toBe(false);
  });

  it("writes units with exactly the market's decimals", () => {
    expect(formatUnits(4500n, 2)).toBe("45.00");
    expect(formatUnits(5n, 8)).toBe("0.00000005");
    expect(formatUnits(-5n, 2)).toBe("-0.05");
    expect(formatUnits(7n, 0)).toBe("7");
    expect(formatDecimal("0", 8)).toBe("0.00000000");
    expect(formatDecimal("0.1", 6)).toBe("0.100000");
  });

  it("compares at the larger scale and knows zero", () => {
    expect(compareDecimal("0.10", "0.1")).toBe(0);
    expect(compareDecimal("515.01", "515.1")).toBe(-1);
    expect(compareDecimal("45000000.00", "9999999.99")).toBe(1);
    expect(isZero("0")).toBe(true);
    expect(isZero("0.00000000")).toBe(true);
    expect(isZero("0.00000001")).toBe(false);
  });

  it("gives the 24 h change in percent, rounded half away from zero", () => {
    expect(percentChange("200000.00", "45000000.00")).toBe("+0.44%");
    expect(percentChange("-200000.00", "45000000.00")).toBe("-0.44%");
    expect(percentChange("0.00", "515.00")).toBe("+0.00%");
    expect(percentChange("0.05", "1000.00")).toBe("+0.01%"); // 0.005% rounds up
    expect(percentChange("0.04", "1000.00")).toBe("+0.00%");
    expect(percentChange("-0.04", "1000.00")).toBe("+0.00%"); // no "-0.00%"
    expect(percentChange(null, null)).toBeNull();
  });

  it("measures a depth bar in tenths of a percent without floats", () => {
    expect(permille(1n, 3n)).toBe(333);
    expect(permille(3n, 3n)).toBe(1000);
    expect(permille(0n, 0n)).toBe(0);
    expect(permille(10n ** 30n, 10n ** 30n * 2n)).toBe(500);
  });
});
