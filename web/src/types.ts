/** What the venue sends (docs/protocol.md): every amount a decimal string, every time ms. */

import { decimalsOf } from "./decimal";

export interface MarketInfo {
  symbol: string;
  base: string;
  quote: string;
  tick: string;
  lot: string;
  min_qty: string;
  min_notional: string;
  status: string;
  reference_price: string | null;
}

/** A market with its decimals: prices in the quote's, quantities in the base's. */
export interface Market extends MarketInfo {
  priceScale: number;
  qtyScale: number;
}

/** The venue writes `tick` and `lot` with all of their asset's decimals. */
export function withScales(info: MarketInfo): Market {
  return { ...info, priceScale: decimalsOf(info.tick), qtyScale: decimalsOf(info.lot) };
}

export interface Ticker {
  market: string;
  last: string | null;
  bid: string | null;
  ask: string | null;
  open: string | null;
  high: string | null;
  low: string | null;
  volume: string | null;
  change: string | null;
  trades: number;
}

export interface Trade {
  trade_id: number;
  price: string;
  qty: string;
  taker_side: "buy" | "sell";
  ts: number;
}

export interface Candle {
  open_time: number;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
}

export interface Order {
  order_id: number | null;
  client_order_id: string | null;
  market: string;
  side: "buy" | "sell";
  order_type: "limit" | "market";
  price: string | null;
  qty: string;
  filled_qty: string;
  remaining_qty: string;
  status: string;
  ts: number;
  reason?: string;
  message?: string;
}

/** One of the participant's fills, as `fills.history` writes it. */
export interface Fill {
  trade_id: number;
  order_id: number;
  market: string;
  side: "buy" | "sell";
  price: string;
  qty: string;
  fee: string;
  fee_asset: string;
  liquidity: "maker" | "taker";
  ts: number;
}

export interface Balance {
  asset: string;
  total: string;
  available: string;
  held: string;
}

export const INTERVALS = ["1m", "5m", "15m", "1h", "4h", "1d"] as const;
export type Interval = (typeof INTERVALS)[number];
