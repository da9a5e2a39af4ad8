/** The market list: each market's last price and 24 h change, a button to choose it. */

import { percentChange } from "../decimal";
import { h } from "../dom";
import type { Market, Ticker } from "../types";

export class MarketsView {
  private readonly list: HTMLElement;
  private readonly onSelect: (symbol: string) => void;

  constructor(list: HTMLElement, onSelect: (symbol: string) => void) {
    this.list = list;
    this.onSelect = onSelect;
  }

  render(markets: Market[], tickers: Map<string, Ticker>, selected: string | null): void {
    const items = markets.map((market) => {
      const ticker = tickers.get(market.symbol);
      const last = ticker?.last ?? null;
      const change = percentChange(ticker?.change ?? null, ticker?.open ?? null);
      const direction = change === null ? "flat" : change.startsWith("-") ? "down" : change === "+0.00%" ? "flat" : "up";
      const button = h(
        "button",
        {
          type: "button",
          class: "market",
          "aria-pressed": market.symbol === selected ? "true" : "false",
          "data-market": market.symbol,
          "aria-label": `${market.symbol}, last ${last ?? "no trade"}, 24 hour change ${change ?? "none"}${market.status === "halted" ? ", halted" : ""}`,
        },
        h("span", { class: "symbol" }, market.symbol),
        h("span", { class: "last num" }, last ?? "–"),
        h("span", { class: `change num ${direction}` }, change ?? "–"),
      );
      button.addEventListener("click", () => this.onSelect(market.symbol));
      return h("li", {}, button);
    });
    this.list.replaceChildren(...items);
  }
}
