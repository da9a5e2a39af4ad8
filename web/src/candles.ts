/**
 * Candles from `GET /api/v1/candles` (arrays, oldest first) and the `candles:` stream
 * (objects), joined: the stream is followed first and its messages held until the history
 * has arrived, then those not older than the history's last candle are applied after it.
 */

import type { Candle } from "./types";

/** One row of `GET /api/v1/candles`: [open_time, open, high, low, close, volume, ...]. */
export type CandleRow = [number, string, string, string, string, string, ...unknown[]];

export function fromRow(row: CandleRow): Candle {
  const [open_time, open, high, low, close, volume] = row;
  return { open_time, open, high, low, close, volume };
}

/** The stream's candles that come after (or replace the last of) the history. */
export function laterThan(history: Candle[], live: Candle[]): Candle[] {
  const last = history.length > 0 ? history[history.length - 1].open_time : -Infinity;
  return live.filter((candle) => candle.open_time >= last);
}
