/**
 * The logged-in participant's open orders, fills and balances: set from `orders.open`,
 * `fills.history` and `account.balances`, then kept live by the private `orders` stream
 * (`order`, `fill` and `balance` messages, docs/protocol.md).  Sans-I/O.
 */

import type { Balance, Fill, Order } from "./types";

const OPEN = new Set(["new", "partially_filled"]);

/** A `fill` message of the `orders` stream. */
export interface FillMessage {
  type: "fill";
  order_id: number;
  market: string;
  side: "buy" | "sell";
  trade_id: number;
  fill_price: string;
  fill_qty: string;
  fee: string;
  fee_asset: string;
  liquidity: "maker" | "taker";
  /** The order as it stands after this fill. */
  filled_qty: string;
  remaining_qty: string;
  status: string;
  ts: number;
}

export type OrdersStreamData = ({ type: "order" } & Order) | FillMessage | ({ type: "balance" } & Balance);

export class Account {
  readonly fillsKept: number;
  private readonly orders = new Map<number, Order>();
  private readonly balances = new Map<string, Balance>();
  private fills: Fill[] = [];

  constructor(fillsKept = 50) {
    this.fillsKept = fillsKept;
  }

  clear(): void {
    this.orders.clear();
    this.balances.clear();
    this.fills = [];
  }

  /** Replace the open orders with an `orders.open` answer (all its pages). */
  setOpenOrders(orders: Order[]): void {
    this.orders.clear();
    for (const order of orders) {
      this.applyOrder(order);
    }
  }

  setBalances(balances: Balance[]): void {
    this.balances.clear();
    for (const balance of balances) {
      this.balances.set(balance.asset, balance);
    }
  }

  /** Merge fills (from `fills.history` or the stream), each once, newest first. */
  addFills(fills: Fill[]): void {
    const key = (fill: Fill): string => `${fill.market}:${fill.trade_id}:${fill.order_id}`;
    const merged = new Map<string, Fill>();
    for (const fill of [...this.fills, ...fills]) {
      merged.set(key(fill), fill);
    }
    this.fills = [...merged.values()]
      .sort((a, b) => b.ts - a.ts || b.trade_id - a.trade_id)
      .slice(0, this.fillsKept);
  }

  /** Apply one message of the `orders` stream. */
  apply(data: OrdersStreamData): void {
    if (data.type === "order") {
      this.applyOrder(data);
    } else if (data.type === "fill") {
      // a resting order that is hit gets a fill, with its new state, and no order message
      const order = this.orders.get(data.order_id);
      if (order !== undefined) {
        const { filled_qty, remaining_qty, status } = data;
        this.applyOrder({ ...order, filled_qty, remaining_qty, status });
      }
      this.addFills([
        {
          trade_id: data.trade_id,
          order_id: data.order_id,
          market: data.market,
          side: data.side,
          price: data.fill_price,
          qty: data.fill_qty,
          fee: data.fee,
          fee_asset: data.fee_asset,
          liquidity: data.liquidity,
          ts: data.ts,
        },
      ]);
    } else if (data.type === "balance") {
      this.balances.set(data.asset, { asset: data.asset, total: data.total, available: data.available, held: data.held });
    }
  }

  /** Open orders, newest first. */
  openOrders(): Order[] {
    return [...this.orders.values()].sort((a, b) => (b.order_id ?? 0) - (a.order_id ?? 0));
  }

  /** Balances by asset name. */
  balanceList(): Balance[] {
    return [...this.balances.values()].sort((a, b) => a.asset.localeCompare(b.asset));
  }

  /** Fills, newest first. */
  fillList(): readonly Fill[] {
    return this.fills;
  }

  private applyOrder(order: Order): void {
    if (order.order_id === null) {
      return; // a rejected order: it never existed (its error answer says why)
    }
    const { order_id: id } = order;
    if (OPEN.has(order.status)) {
      const { type: _type, ...fields } = order as Order & { type?: string };
      this.orders.set(id, fields);
    } else {
      this.orders.delete(id);
    }
  }
}
