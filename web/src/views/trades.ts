/** The recent trades of the chosen market, newest first. */

import { h, timeOfDay } from "../dom";
import type { Tape } from "../tape";
import type { Market } from "../types";

export class TradesView {
  private readonly table: HTMLTableElement;

  constructor(container: HTMLElement) {
    this.table = h("table", { class: "trades" });
    container.replaceChildren(this.table);
  }

  render(tape: Tape | null, market: Market | null): void {
    if (tape === null || market === null) {
      this.table.replaceChildren();
      return;
    }
    this.table.setAttribute("aria-label", `Recent trades of ${market.symbol}`);
    const head = h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Time"),
        h("th", { scope: "col" }, `Price (${market.quote})`),
        h("th", { scope: "col" }, `Amount (${market.base})`),
      ),
    );
    const rows = tape.list().map((trade) =>
      h(
        "tr",
        { class: trade.taker_side, "data-trade-id": trade.trade_id },
        h("td", {}, timeOfDay(trade.ts)),
        h("td", { class: "num price" }, trade.price, h("span", { class: "visually-hidden" }, ` ${trade.taker_side}`)),
        h("td", { class: "num" }, trade.qty),
      ),
    );
    const body = rows.length > 0 ? rows : [h("tr", {}, h("td", { colspan: 3, class: "empty" }, "no trades yet"))];
    this.table.replaceChildren(head, h("tbody", {}, ...body));
  }
}

