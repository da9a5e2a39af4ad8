/**
 * Exact decimal arithmetic on the wire's decimal strings ("45000000.00", "0.00100000").
 *
 * Money, prices and quantities never become JavaScript numbers here: a decimal string is
 * read into a BigInt count of units of 10^-scale, added or compared as BigInt, and written
 * back as a string.  The only place a price becomes a number is the candle chart, for
 * drawing (src/views/chart.ts says so).
 */

const PLAIN = /^[0-9]+(\.[0-9]+)?$/;

/** The number of digits after the point: "1.00" -> 2, "0.00001000" -> 8, "5" -> 0. */
export function decimalsOf(text: string): number {
  const point = text.indexOf(".");
  return point < 0 ? 0 : text.length - point - 1;
}

/** Is `text` a plain decimal the server accepts (ASCII digits, at most one point, no sign)? */
export function isPlainDecimal(text: string): boolean {
  return PLAIN.test(text);
}

/**
 * `text` as a count of 10^-scale units, exactly.  A leading "-" is allowed (a 24 h change
 * can be negative); more decimals than `scale` are allowed only when they are zeros.
 * Throws on anything that is not a plain decimal.
 */
export function toUnits(text: string, scale: number): bigint {
  const negative = text.startsWith("-");
  const digits = negative ? text.slice(1) : text;
  if (!PLAIN.test(digits)) {
    throw new Error(`${JSON.stringify(text)} is not a plain decimal number`);
  }
  const [whole, fraction = ""] = digits.split(".");
  const extra = fraction.slice(scale);
  if (/[^0]/.test(extra)) {
    throw new Error(`${text} has more than ${scale} decimals`);
  }
  const units = BigInt(whole + fraction.slice(0, scale).padEnd(scale, "0"));
  return negative ? -units : units;
}

/** A count of 10^-scale units written with exactly `scale` decimals: (4500n, 2) -> "45.00". */
export function formatUnits(units: bigint, scale: number): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const text = scale > 0 ? `${whole}.${digits.slice(digits.length - scale)}` : whole;
  return negative ? `-${text}` : text;
}

/** `text` written with exactly `scale` decimals ("0" -> "0.00000000"). */
export function formatDecimal(text: string, scale: number): string {
  return formatUnits(toUnits(text, scale), scale);
}

/** -1, 0 or 1 as a < b, a = b, a > b; both read at the larger of their scales. */
export function compareDecimal(a: string, b: string): number {
  const scale = Math.max(decimalsOf(a), decimalsOf(b));
  const x = toUnits(a, scale);
  const y = toUnits(b, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Is `text` zero ("0", "0.000")? */
export function isZero(text: string): boolean {
  return toUnits(text, decimalsOf(text.replace("-", ""))) === 0n;
}

/**
 * The 24 h change in percent of `open`, to two decimals, signed: ("200000.00",
 * "45000000.00") -> "+0.44%".  Rounded half away from zero; null without an open price.
 */
export function percentChange(change: string | null, open: string | null): string | null {
  if (change === null || open === null) {
    return null;
  }
  const scale = Math.max(decimalsOf(change.replace("-", "")), decimalsOf(open));
  const c = toUnits(change, scale);
  const o = toUnits(open, scale);
  if (o === 0n) {
    return null;
  }
  // basis points of a percent: change * 10000 / open, rounded half away from zero
  const magnitude = ((c < 0n ? -c : c) * 20000n) / o;
  const hundredths = (magnitude + 1n) / 2n;
  const sign = c < 0n && hundredths > 0n ? "-" : "+";
  return `${sign}${formatUnits(hundredths, 2)}%`;
}

/**
 * What share of `whole` `part` is, in tenths of a percent (0 to 1000), rounded down:
 * the width of a depth bar, computed without floats.
 */
export function permille(part: bigint, whole: bigint): number {
  if (whole <= 0n || part <= 0n) {
    return 0;
  }
  const share = (part * 1000n) / whole;
  return Number(share > 1000n ? 1000n : share);
}
