/**
 * Cumulative depth: each book level with the total quantity from the best price down to
 * it, and the width of its depth bar.  Exact: quantities are summed as BigInt units.
 */

import { formatUnits, permille, toUnits } from "./decimal";
import type { Level } from "./book";

export interface DepthRow {
  price: string;
  qty: string;
  /** Quantity from the best level to this one, inclusive, with the market's decimals. */
  total: string;
  /** The bar's width: `total` in tenths of a percent of the deeper side's total shown. */
  share: number;
}

export interface Depth {
  bids: DepthRow[];
  asks: DepthRow[];
}

/**
 * The best `limit` levels a side with their running totals.  Both sides' bars share one
 * scale (the larger of the two sides' totals shown), so their lengths compare.
 */
export function cumulativeDepth(bids: Level[], asks: Level[], qtyScale: number, limit: number): Depth {
  const run = (levels: Level[]): { level: Level; total: bigint }[] => {
    let total = 0n;
    return levels.slice(0, limit).map((level) => {
      total += toUnits(level[1], qtyScale);
      return { level, total };
    });
  };
  const bidRuns = run(bids);
  const askRuns = run(asks);
  const deepest = [...bidRuns, ...askRuns].reduce((max, row) => (row.total > max ? row.total : max), 0n);
  const rows = (runs: { level: Level; total: bigint }[]): DepthRow[] =>
    runs.map(({ level, total }) => ({
      price: level[0],
      qty: level[1],
      total: formatUnits(total, qtyScale),
      share: permille(total, deepest),
    }));
  return { bids: rows(bidRuns), asks: rows(askRuns) };
}
