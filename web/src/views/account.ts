/** The participant's open orders (each with a cancel button), fills and balances. */

import type { Account } from "../account";
import { h, timeOfDay } from "../dom";

export class AccountView {
  /** Cancel one order; rejects with the reason, which is shown. */
  onCancel: (market: string, orderId: number) => Promise<void> = () => Promise.resolve();
  onCancelAll: () => Promise<void> = () => Promise.resolve();
  private readonly orders: HTMLTableElement;
  private readonly fills: HTMLTableElement;
  private readonly balances: HTMLTableElement;
  private readonly message: HTMLElement;

  constructor(orders: HTMLElement, fills: HTMLElement, balances: HTMLElement, message: HTMLElement, cancelAll: HTMLButtonElement) {
    this.orders = h("table", { "aria-label": "Open orders" });
    this.fills = h("table", { "aria-label": "Fills" });
    this.balances = h("table", { "aria-label": "Balances" });
    this.message = message;
    orders.replaceChildren(this.orders);
    fills.replaceChildren(this.fills);
    balances.replaceChildren(this.balances);
    cancelAll.addEventListener("click", () => void this.run(() => this.onCancelAll()));
  }

  render(account: Account): void {
    const open = account.openOrders();
    this.orders.replaceChildren(
      header("Market", "Side", "Price", "Amount", "Filled", "Status", "Action"),
      h(
        "tbody",
        {},
        ...(open.length === 0 ? [empty(7, "no open orders")] : []),
        ...open.map((order) => {
          const cancel = h(
            "button",
            { type: "button", class: "cancel", "aria-label": `Cancel order ${order.order_id}` },
            "Cancel",
          );
          cancel.addEventListener("click", () => void this.run(() => this.onCancel(order.market, order.order_id ?? 0)));
          return h(
            "tr",
            { "data-order-id": order.order_id },
            h("td", {}, order.market),
            h("td", { class: order.side }, order.side),
            h("td", { class: "num" }, order.price ?? "market"),
            h("td", { class: "num" }, order.qty),
            h("td", { class: "num" }, order.filled_qty),
            h("td", {}, order.status.replace("_", " ")),
            h("td", {}, cancel),
          );
        }),
      ),
    );
    const fills = account.fillList();
    this.fills.replaceChildren(
      header("Time", "Market", "Side", "Price", "Amount", "Fee", "Role"),
      h(
        "tbody",
        {},
        ...(fills.length === 0 ? [empty(7, "no fills yet")] : []),
        ...fills.map((fill) =>
          h(
            "tr",
            { "data-trade-id": fill.trade_id },
            h("td", {}, timeOfDay(fill.ts)),
            h("td", {}, fill.market),
            h("td", { class: fill.side }, fill.side),
            h("td", { class: "num" }, fill.price),
            h("td", { class: "num" }, fill.qty),
            h("td", { class: "num" }, `${fill.fee} ${fill.fee_asset}`),
            h("td", {}, fill.liquidity),
          ),
        ),
      ),
    );
    this.balances.replaceChildren(
      // the total is available + held: shown on hover, and read out with the asset's name
      header("Asset", "Available", "Held"),
      h(
        "tbody",
        {},
        ...account.balanceList().map((balance) =>
          h(
            "tr",
            { "data-asset": balance.asset, "data-total": balance.total, title: `total ${balance.total}` },
            h("th", { scope: "row" }, balance.asset, h("span", { class: "visually-hidden" }, `, total ${balance.total}`)),
            h("td", { class: "num" }, balance.available),
            h("td", { class: "num" }, balance.held),
          ),
        ),
      ),
    );
  }

  private async run(action: () => Promise<void>): Promise<void> {
    this.message.textContent = "";
    try {
      await action();
    } catch (error) {
      this.message.textContent = String(error);
    }
  }
}

function header(...names: string[]): HTMLElement {
  return h("thead", {}, h("tr", {}, ...names.map((name) => h("th", { scope: "col" }, name))));
}

function empty(columns: number, text: string): HTMLElement {
  return h("tr", {}, h("td", { colspan: columns, class: "empty" }, text));
}
