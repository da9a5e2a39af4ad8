/**
 * The order form: limit or market, buy or sell, post-only or IOC.  Prices and quantities go
 * to the server as typed (the server checks ticks, lots and decimals); every reject is
 * shown with the server's code and message.
 */

import { byId } from "../dom";
import type { Market, Order } from "../types";

export interface PlaceParams {
  market: string;
  side: "buy" | "sell";
  type: "limit" | "market";
  qty: string;
  price?: string;
  tif?: "IOC";
  post_only?: true;
}

export class OrderFormView {
  /** Send the order; resolves with it as the venue answered, rejects with the reason. */
  onPlace: (params: PlaceParams) => Promise<Order> = () => Promise.reject(new Error("not ready"));
  private readonly form = byId<HTMLFormElement>("order-form");
  private readonly type = byId<HTMLSelectElement>("order-type");
  private readonly price = byId<HTMLInputElement>("order-price");
  private readonly qty = byId<HTMLInputElement>("order-qty");
  private readonly postOnly = byId<HTMLInputElement>("order-post-only");
  private readonly ioc = byId<HTMLInputElement>("order-ioc");
  private readonly result = byId("order-result");
  private market: Market | null = null;
  private side: "buy" | "sell" = "buy";

  constructor() {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const submitter = (event as SubmitEvent).submitter;
      this.side = submitter?.getAttribute("value") === "sell" ? "sell" : "buy";
      void this.submit();
    });
    this.type.addEventListener("change", () => this.sync());
    // post-only and IOC exclude each other (a post-only order must be able to rest)
    this.postOnly.addEventListener("change", () => {
      if (this.postOnly.checked) this.ioc.checked = false;
    });
    this.ioc.addEventListener("change", () => {
      if (this.ioc.checked) this.postOnly.checked = false;
    });
    this.sync();
  }

  setMarket(market: Market): void {
    if (this.market?.symbol !== market.symbol) {
      this.price.value = ""; // another market's price and amount mean nothing here
      this.qty.value = "";
    }
    this.market = market;
    byId("order-price-unit").textContent = market.quote;
    byId("order-qty-unit").textContent = market.base;
    byId("order-market").textContent = market.symbol;
    byId("order-buy").textContent = `Buy ${market.base}`;
    byId("order-sell").textContent = `Sell ${market.base}`;
    this.price.placeholder = `tick ${market.tick}`;
    this.qty.placeholder = `min ${market.min_qty}`;
    this.result.textContent = "";
  }

  /** Fill the price in (a book level was chosen). */
  setPrice(price: string): void {
    if (this.type.value === "limit") {
      this.price.value = price;
    }
  }

  private sync(): void {
    const limit = this.type.value === "limit";
    this.price.disabled = !limit;
    this.postOnly.disabled = !limit;
    if (!limit) {
      this.postOnly.checked = false;
    }
  }

  private async submit(): Promise<void> {
    const market = this.market;
    if (market === null) {
      return;
    }
    const params: PlaceParams = {
      market: market.symbol,
      side: this.side,
      type: this.type.value === "market" ? "market" : "limit",
      qty: this.qty.value.trim(),
    };
    if (params.type === "limit") {
      params.price = this.price.value.trim();
      if (this.postOnly.checked) params.post_only = true;
      if (this.ioc.checked) params.tif = "IOC";
    }
    this.show("pending", `sending ${params.side} ${params.qty} ${market.base}…`);
    try {
      const order = await this.onPlace(params);
      const at = order.price === null ? "at market" : `at ${order.price}`;
      this.show(
        "ok",
        `order ${order.order_id} ${order.side} ${order.qty} ${at}: ${order.status.replace("_", " ")}, filled ${order.filled_qty}`,
      );
    } catch (error) {
      this.show("error", String(error));
    }
  }

  private show(kind: "pending" | "ok" | "error", text: string): void {
    this.result.className = `result ${kind}`;
    this.result.setAttribute("role", kind === "error" ? "alert" : "status");
    this.result.textContent = text;
  }
}
