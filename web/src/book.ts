/**
 * A local copy of one market's order book, kept from the `book:{market}` channel with its
 * sequence checks (docs/protocol.md, "The seq rules").  Sans-I/O: messages in, a verdict
 * out; the caller subscribes again when `apply` answers "gap".
 *
 * Prices are kept as the server's decimal strings and ordered as BigInt units: no floats.
 */

import { isZero, toUnits } from "./decimal";

export type Level = [price: string, qty: string];

export interface BookMessage {
  channel: "book";
  market: string;
  seq: number;
  first_seq?: number;
  data: { type: "snapshot" | "update"; bids: Level[]; asks: Level[] };
}

/** What `apply` did with a message. */
export type Applied = "snapshot" | "update" | "gap" | "ignored";

export class OrderBook {
  readonly market: string;
  readonly priceScale: number;
  /** The seq of the last change applied (meaningful while `synced`). */
  seq = 0;
  /** False until a snapshot arrives, and again from a gap until the next snapshot. */
  synced = false;
  /** Gaps seen: each one made the caller subscribe again. */
  gaps = 0;
  private readonly bidLevels = new Map<string, string>();
  private readonly askLevels = new Map<string, string>();

  constructor(market: string, priceScale: number) {
    this.market = market;
    this.priceScale = priceScale;
  }

  /**
   * Apply one `book` message.  A snapshot replaces the book; an update applies only when
   * its `first_seq` is the last `seq` + 1.  Any other update while synced is a gap: the book
   * is no longer right, so it stops being synced and every update is ignored until the next
   * snapshot (the caller subscribes again to get one).  Messages of another market are
   * ignored.
   */
  apply(message: BookMessage): Applied {
    if (message.market !== this.market) {
      return "ignored";
    }
    const { data } = message;
    if (data.type === "snapshot") {
      this.bidLevels.clear();
      this.askLevels.clear();
      this.setLevels(this.bidLevels, data.bids);
      this.setLevels(this.askLevels, data.asks);
      this.seq = message.seq;
      this.synced = true;
      return "snapshot";
    }
    if (!this.synced) {
      return "ignored";
    }
    if (message.first_seq !== this.seq + 1) {
      this.synced = false;
      this.gaps += 1;
      return "gap";
    }
    this.setLevels(this.bidLevels, data.bids);
    this.setLevels(this.askLevels, data.asks);
    this.seq = message.seq;
    return "update";
  }

  /** The bids, best (highest) first. O(n log n) in the levels. */
  bids(): Level[] {
    return this.sorted(this.bidLevels, -1);
  }

  /** The asks, best (lowest) first. O(n log n) in the levels. */
  asks(): Level[] {
    return this.sorted(this.askLevels, 1);
  }

  private setLevels(side: Map<string, string>, levels: Level[]): void {
    for (const [price, qty] of levels) {
      if (isZero(qty)) {
        side.delete(price); // "0": the level is gone
      } else {
        side.set(price, qty);
      }
    }
  }

  private sorted(side: Map<string, string>, direction: 1 | -1): Level[] {
    const scale = this.priceScale;
    const keyed = [...side].map(([price, qty]) => ({ key: toUnits(price, scale), level: [price, qty] as Level }));
    keyed.sort((a, b) => (a.key < b.key ? -direction : a.key > b.key ? direction : 0));
    return keyed.map((entry) => entry.level);
  }
}
