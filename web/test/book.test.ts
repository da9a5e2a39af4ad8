import { describe, expect, it } from "vitest";

import { type BookMessage, OrderBook } from "../src/book";
import { cumulativeDepth } from "../src/depth";

const M = "BTC-KZT";

function snapshot(seq: number, bids: [string, string][], asks: [string, string][]): BookMessage {
  return { channel: "book", market: M, seq, data: { type: "snapshot", bids, asks } };
}

function update(first: number, seq: number, bids: [string, string][], asks: [string, string][]): BookMessage {
  return { channel: "book", market: M, first_seq: first, seq, data: { type: "update", bids, asks } };
}

describe("the local order book", () => {
  it("starts from a snapshot and applies updates in sequence", () => {
    const book = new OrderBook(M, 2);
    expect(book.apply(update(1, 1, [], [["45000000.00", "0.01000000"]]))).toBe("ignored");
    expect(book.apply(snapshot(4, [["44000000.00", "0.50000000"]], [["45000000.00", "0.65000000"]]))).toBe("snapshot");
    expect(book.apply(update(5, 7, [["44100000.00", "0.10000000"]], [["45000000.00", "0"]]))).toBe("update");
    expect(book.seq).toBe(7);
    expect(book.bids()).toEqual([
      ["44100000.00", "0.10000000"],
      ["44000000.00", "0.50000000"],
    ]);
    expect(book.asks()).toEqual([]);
  });

  it("orders prices as numbers, not as text", () => {
    const book = new OrderBook(M, 2);
    book.apply(snapshot(0, [["9.00", "1"], ["10.00", "1"], ["100.00", "1"]], [["100.00", "1"], ["9.50", "1"], ["10.00", "1"]]));
    expect(book.bids().map(([p]) => p)).toEqual(["100.00", "10.00", "9.00"]);
    expect(book.asks().map(([p]) => p)).toEqual(["9.50", "10.00", "100.00"]);
  });

  it("treats a missing seq as a gap and ignores updates until the next snapshot", () => {
    const book = new OrderBook(M, 2);
    book.apply(snapshot(10, [["1.00", "1"]], []));
    expect(book.apply(update(12, 12, [["2.00", "1"]], []))).toBe("gap");
    expect(book.synced).toBe(false);
    expect(book.gaps).toBe(1);
    expect(book.apply(update(13, 13, [["3.00", "1"]], []))).toBe("ignored");
    expect(book.apply(snapshot(13, [["3.00", "1"]], []))).toBe("snapshot");
    expect(book.synced).toBe(true);
    expect(book.apply(update(14, 14, [["4.00", "1"]], []))).toBe("update");
    expect(book.bids().map(([p]) => p)).toEqual(["4.00", "3.00"]);
  });

  it("sees a repeated update as a gap too", () => {
    const book = new OrderBook(M, 2);
    book.apply(snapshot(3, [], []));
    expect(book.apply(update(4, 5, [], []))).toBe("update");
    expect(book.apply(update(4, 5, [], []))).toBe("gap");
  });

  it("ignores another market's messages", () => {
    const book = new OrderBook(M, 2);
    expect(book.apply({ ...snapshot(1, [], []), market: "ETH-KZT" })).toBe("ignored");
    expect(book.synced).toBe(false);
  });
});

describe("cumulative depth", () => {
  it("sums each side from the best level, exactly, on one bar scale", () => {
    const depth = cumulativeDepth(
      [["44100000.00", "0.10000000"], ["44000000.00", "0.20000000"], ["43900000.00", "0.30000000"]],
      [["45000000.00", "0.10000001"]],
      8,
      2,
    );
    expect(depth.bids).toEqual([
      { price: "44100000.00", qty: "0.10000000", total: "0.10000000", share: 333 },
      { price: "44000000.00", qty: "0.20000000", total: "0.30000000", share: 1000 },
    ]);
    expect(depth.asks).toEqual([{ price: "45000000.00", qty: "0.10000001", total: "0.10000001", share: 333 }]);
  });

  it("is empty for an empty book", () => {
    expect(cumulativeDepth([], [], 8, 10)).toEqual({ bids: [], asks: [] });
  });
});
