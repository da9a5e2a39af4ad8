import { describe, expect, it } from "vitest";

import { Account } from "../src/account";
import { laterThan } from "../src/candles";
import { Tape } from "../src/tape";
import type { Order } from "../src/types";

const order = (id: number, status: string): Order => ({
  order_id: id,
  client_order_id: null,
  market: "BTC-KZT",
  side: "buy",
  order_type: "limit",
  price: "44000000.00",
  qty: "0.00100000",
  filled_qty: "0.00000000",
  remaining_qty: "0.00100000",
  status,
  ts: 1,
});

describe("the account", () => {
  it("keeps open orders live from the orders stream", () => {
    const account = new Account();
    account.setOpenOrders([order(1, "new")]);
    account.apply({ type: "order", ...order(2, "new") });
    account.apply({ type: "order", ...order(1, "canceled") });
    account.apply({ type: "order", ...order(3, "filled") });
    account.apply({ type: "order", ...order(4, "rejected"), order_id: null });
    expect(account.openOrders().map((o) => o.order_id)).toEqual([2]);
    expect(account.openOrders()[0]).not.toHaveProperty("type");
  });

  it("merges fills from history and stream once each, newest first", () => {
    const account = new Account(2);
    const fill = {
      type: "fill" as const,
      order_id: 2,
      market: "BTC-KZT",
      side: "buy" as const,
      trade_id: 7,
      fill_price: "45000000.00",
      fill_qty: "0.00400000",
      fee: "180.00",
      fee_asset: "KZT",
      liquidity: "taker" as const,
      filled_qty: "0.00400000",
      remaining_qty: "0.00000000",
      status: "filled",
      ts: 10,
    };
    account.apply(fill);
    account.addFills([{ trade_id: 7, order_id: 2, market: "BTC-KZT", side: "buy", price: "45000000.00", qty: "0.00400000", fee: "180.00", fee_asset: "KZT", liquidity: "taker", ts: 10 }]);
    account.apply({ ...fill, trade_id: 8, ts: 11 });
    account.apply({ ...fill, trade_id: 9, ts: 12 });
    expect(account.fillList().map((f) => f.trade_id)).toEqual([9, 8]);
    expect(account.fillList()[0].price).toBe("45000000.00");
  });

  it("updates a resting order from its fills: partly filled, then gone", () => {
    const account = new Account();
    account.setOpenOrders([{ ...order(5, "new"), qty: "0.01000000" }]);
    const fill = {
      type: "fill" as const,
      order_id: 5,
      market: "BTC-KZT",
      side: "buy" as const,
      trade_id: 1,
      fill_price: "44000000.00",
      fill_qty: "0.00400000",
      fee: "176.00",
      fee_asset: "KZT",
      liquidity: "maker" as const,
      filled_qty: "0.00400000",
      remaining_qty: "0.00600000",
      status: "partially_filled",
      ts: 5,
    };
    account.apply(fill);
    expect(account.openOrders()[0]).toMatchObject({ filled_qty: "0.00400000", remaining_qty: "0.00600000", status: "partially_filled" });
    account.apply({ ...fill, trade_id: 2, fill_qty: "0.00600000", filled_qty: "0.01000000", remaining_qty: "0.00000000", status: "filled" });
    expect(account.openOrders()).toEqual([]);
  });

  it("replaces a balance with the stream's newer one", () => {
    const account = new Account();
    account.setBalances([{ asset: "KZT", total: "10.00", available: "10.00", held: "0.00" }]);
    account.apply({ type: "balance", asset: "KZT", total: "9.00", available: "8.00", held: "1.00" });
    expect(account.balanceList()).toEqual([{ asset: "KZT", total: "9.00", available: "8.00", held: "1.00" }]);
  });
});

describe("the trades tape", () => {
  it("merges query and stream by trade id, newest first, bounded", () => {
    const tape = new Tape("BTC-KZT", 3);
    const trade = (id: number) => ({ trade_id: id, price: "1.00", qty: "1", taker_side: "buy" as const, ts: id });
    tape.add([trade(5), trade(4)]);
    tape.add([trade(3), trade(4), trade(6), trade(7)]);
    expect(tape.list().map((t) => t.trade_id)).toEqual([7, 6, 5]);
  });
});

describe("candles", () => {
  it("keeps the live candles from the history's last one on", () => {
    const c = (t: number) => ({ open_time: t, open: "1", high: "1", low: "1", close: "1", volume: "1" });
    expect(laterThan([c(60), c(120)], [c(60), c(120), c(180)]).map((x) => x.open_time)).toEqual([120, 180]);
    expect(laterThan([], [c(60)]).map((x) => x.open_time)).toEqual([60]);
  });
});
