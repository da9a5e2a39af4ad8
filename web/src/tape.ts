/**
 * The recent trades of one market, newest first: from `trades.recent` and the `trades:`
 * stream, which may overlap (a trade published between the subscribe and the query comes
 * both ways), so trades are merged by `trade_id`.
 */

import type { Trade } from "./types";

export class Tape {
  readonly market: string;
  readonly size: number;
  private trades: Trade[] = [];

  constructor(market: string, size = 50) {
    this.market = market;
    this.size = size;
  }

  /** Add trades in any order; keeps the newest `size`, each once. O(n log n). */
  add(trades: Trade[]): void {
    const byId = new Map<number, Trade>();
    for (const trade of [...this.trades, ...trades]) {
      byId.set(trade.trade_id, trade);
    }
    this.trades = [...byId.values()].sort((a, b) => b.trade_id - a.trade_id).slice(0, this.size);
  }

  /** Newest first. */
  list(): readonly Trade[] {
    return this.trades;
  }
}
