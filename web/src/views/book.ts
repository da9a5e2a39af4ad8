/** The order book with cumulative depth: asks above (best at the bottom), bids below. */

import type { OrderBook } from "../book";
import { formatUnits, toUnits } from "../decimal";
import { type DepthRow, cumulativeDepth } from "../depth";
import { h } from "../dom";
import type { Market } from "../types";

const LEVELS = 12;

export class BookView {
  private readonly asks: HTMLTableElement;
  private readonly bids: HTMLTableElement;
  private readonly spread: HTMLElement;
  private readonly state: HTMLElement;
  /** Called with a price when a level is chosen (it fills the order form). */
  onPick: (price: string) => void = () => {};

  constructor(container: HTMLElement) {
    this.asks = h("table", { class: "book asks" });
    this.bids = h("table", { class: "book bids" });
    this.spread = h("p", { class: "spread num" });
    this.state = h("p", { class: "book-state", role: "status" });
    container.replaceChildren(this.state, this.asks, this.spread, this.bids);
  }

  render(book: OrderBook | null, market: Market | null): void {
    if (book === null || market === null) {
      this.state.textContent = "choose a market";
      return;
    }
    this.state.textContent = book.synced ? "" : "syncing the book…";
    const bids = book.bids();
    const asks = book.asks();
    const depth = cumulativeDepth(bids, asks, market.qtyScale, LEVELS);
    this.fill(this.asks, `Asks of ${market.symbol}`, market, [...depth.asks].reverse(), "ask");
    this.fill(this.bids, `Bids of ${market.symbol}`, market, depth.bids, "bid");
    if (bids.length > 0 && asks.length > 0) {
      const gap = toUnits(asks[0][0], market.priceScale) - toUnits(bids[0][0], market.priceScale);
      this.spread.textContent = `spread ${formatUnits(gap, market.priceScale)} ${market.quote}`;
    } else {
      this.spread.textContent = bids.length + asks.length === 0 ? "the book is empty" : "spread –";
    }
  }

  private fill(table: HTMLTableElement, label: string, market: Market, rows: DepthRow[], side: string): void {
    table.setAttribute("aria-label", label);
    const head = h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, `Price (${market.quote})`),
        h("th", { scope: "col" }, `Amount (${market.base})`),
        h("th", { scope: "col" }, `Total (${market.base})`),
      ),
    );
    const body = h(
      "tbody",
      {},
      ...rows.map((row) => {
        const tr = h(
          "tr",
          { class: side, "data-price": row.price, "data-qty": row.qty },
          h("td", { class: "num price" }, h("button", { type: "button", class: "pick", title: "use this price" }, row.price)),
          h("td", { class: "num" }, row.qty),
          h("td", { class: "num" }, row.total),
        );
        // depth bar width, in percent with one decimal (row.share is in tenths of a percent)
        tr.style.setProperty("--depth", `${formatUnits(BigInt(row.share), 1)}%`);
        tr.querySelector("button")?.addEventListener("click", () => this.onPick(row.price));
        return tr;
      }),
    );
    table.replaceChildren(head, body);
  }
}
