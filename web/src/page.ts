/**
 * The trading page's controller: one websocket connection, the chosen market's channels,
 * the login, and which view to draw when a message arrives.  Everything public goes over
 * the websocket (markets.list, the ticker:, book:, trades: and candles: channels,
 * trades.recent); the candle history comes from GET /api/v1/candles.
 */

import { Account, type OrdersStreamData } from "./account";
import { type Credentials, loginSignature } from "./auth";
import { type BookMessage, OrderBook } from "./book";
import { type CandleRow, fromRow, laterThan } from "./candles";
import { ApiError, type Connection, type StreamMessage } from "./connection";
import { byId, h, throttled } from "./dom";
import { Tape } from "./tape";
import {
  type Balance,
  type Candle,
  type Fill,
  INTERVALS,
  type Interval,
  type Market,
  type MarketInfo,
  type Order,
  type Ticker,
  type Trade,
  withScales,
} from "./types";
import { AccountView } from "./views/account";
import { BookView } from "./views/book";
import { ChartView } from "./views/chart";
import { LoginView } from "./views/login";
import { MarketsView } from "./views/markets";
import { OrderFormView, type PlaceParams } from "./views/order-form";
import { TradesView } from "./views/trades";

interface LoginResult {
  participant: string;
  category: string;
}

export class TradingPage {
  private readonly connection: Connection;
  private markets: Market[] = [];
  private readonly tickers = new Map<string, Ticker>();
  private market: Market | null = null;
  private interval: Interval = "1m";
  private book: OrderBook | null = null;
  private tape: Tape | null = null;
  /** Candles from the stream held until the history has arrived (null: it has). */
  private heldCandles: Candle[] | null = [];
  private candleRequest = 0;
  private credentials: Credentials | null = null;
  private readonly account = new Account();
  private clockOffsetMs = 0;

  private readonly marketsView = new MarketsView(byId("markets"), (symbol) => this.select(symbol));
  private readonly bookView = new BookView(byId("book"));
  private readonly tradesView = new TradesView(byId("trades"));
  private readonly chartView = new ChartView(byId("chart"));
  private readonly loginView = new LoginView();
  private readonly orderForm = new OrderFormView();
  private readonly accountView = new AccountView(
    byId("open-orders"),
    byId("fills"),
    byId("balances"),
    byId("account-message"),
    byId<HTMLButtonElement>("cancel-all"),
  );
  private readonly drawMarkets = throttled(() => this.marketsView.render(this.markets, this.tickers, this.market?.symbol ?? null));
  private readonly drawBook = throttled(() => this.bookView.render(this.book, this.market));
  private readonly drawTrades = throttled(() => this.tradesView.render(this.tape, this.market));
  private readonly drawAccount = throttled(() => this.accountView.render(this.account));

  constructor(connection: Connection) {
    this.connection = connection;
    connection.onOpen = () => void this.connected();
    connection.onMessage = (message) => this.receive(message);
    connection.onStatus = (status, detail) => {
      const element = byId("status");
      element.textContent = status === "open" ? "live" : status === "connecting" ? "connecting…" : detail;
      element.dataset.status = status;
    };
    this.loginView.onLogin = (credentials) => this.login(credentials);
    this.loginView.onLogout = () => this.logout();
    this.orderForm.onPlace = (params) => this.place(params);
    this.bookView.onPick = (price) => this.orderForm.setPrice(price);
    this.accountView.onCancel = async (market, orderId) => {
      await this.connection.call("order.cancel", { market, order_id: orderId });
    };
    this.accountView.onCancelAll = async () => {
      await this.connection.call("order.cancel_all", {});
    };
    this.buildIntervals();
    this.credentials = this.loginView.remembered();
    window.addEventListener("hashchange", () => {
      const symbol = decodeURIComponent(location.hash.slice(1));
      if (symbol !== this.market?.symbol && this.markets.some((m) => m.symbol === symbol)) {
        this.select(symbol);
      }
    });
  }

  start(): void {
    this.connection.start();
  }

  /** Each (re)connection: the clock, the markets, the channels, the login. */
  private async connected(): Promise<void> {
    try {
      const sent = Date.now();
      const pong = await this.connection.call<{ time: number }>("ping");
      this.clockOffsetMs = pong.time - Math.round((sent + Date.now()) / 2);
      const infos = await this.connection.call<MarketInfo[]>("markets.list");
      this.markets = infos.map(withScales);
      const tickers = this.markets.map((m) => `ticker:${m.symbol}`);
      for (let at = 0; at < tickers.length; at += 64) {
        // a subscribe names at most 64 channels
        await this.connection.call("subscribe", { channels: tickers.slice(at, at + 64) });
      }
      const wanted = decodeURIComponent(location.hash.slice(1));
      const symbol = this.markets.some((m) => m.symbol === wanted) ? wanted : this.market?.symbol ?? this.markets[0]?.symbol;
      this.market = null; // a new connection follows nothing yet
      if (symbol !== undefined) {
        this.select(symbol);
      }
      if (this.credentials !== null) {
        await this.login(this.credentials).then(
          (participant) => this.loginView.showLoggedIn(participant),
          (error: unknown) => this.loginView.showLoggedOut(`could not log in again: ${String(error)}`),
        );
      }
    } catch (error) {
      byId("status").textContent = `the venue did not answer: ${String(error)}`;
    }
  }

  /** Follow `symbol`'s book, trades and candles instead of the market before. */
  private select(symbol: string): void {
    const market = this.markets.find((m) => m.symbol === symbol);
    if (market === undefined) {
      return;
    }
    const previous = this.market;
    if (previous !== null) {
      void this.connection
        .call("unsubscribe", { channels: this.marketChannels(previous.symbol) })
        .catch(() => undefined);
    }
    this.market = market;
    if (location.hash.slice(1) !== symbol) {
      history.replaceState(null, "", `#${encodeURIComponent(symbol)}`);
    }
    document.title = `${symbol} · Alatau Exchange`;
    byId("market-title").textContent = symbol;
    this.book = new OrderBook(symbol, market.priceScale);
    this.tape = new Tape(symbol);
    this.orderForm.setMarket(market);
    this.drawMarkets();
    this.drawBook();
    this.drawTrades();
    void this.follow(market);
  }

  private marketChannels(symbol: string): string[] {
    return [`book:${symbol}`, `trades:${symbol}`, `candles:${symbol}:${this.interval}`];
  }

  private async follow(market: Market): Promise<void> {
    this.chartView.reset(market);
    this.heldCandles = [];
    const request = ++this.candleRequest;
    try {
      await this.connection.call("subscribe", { channels: this.marketChannels(market.symbol) });
      const recent = await this.connection.call<Trade[]>("trades.recent", { market: market.symbol, limit: 50 });
      if (this.tape?.market === market.symbol) {
        this.tape.add(recent);
        this.drawTrades();
      }
      await this.loadCandles(market, request);
    } catch (error) {
      byId("status").textContent = `${market.symbol}: ${String(error)}`;
    }
  }

  private async loadCandles(market: Market, request: number): Promise<void> {
    const query = new URLSearchParams({ market: market.symbol, interval: this.interval, limit: "500" });
    const response = await fetch(`api/v1/candles?${query}`);
    const body = (await response.json()) as CandleRow[] | { error: { code: string; message: string } };
    if (request !== this.candleRequest) {
      return; // another market or interval was chosen meanwhile
    }
    if (!Array.isArray(body)) {
      throw new ApiError(body.error.code, body.error.message);
    }
    const history = body.map(fromRow);
    this.chartView.setHistory(history);
    for (const candle of laterThan(history, this.heldCandles ?? [])) {
      this.chartView.update(candle);
    }
    this.heldCandles = null;
  }

  private buildIntervals(): void {
    const group = byId("intervals");
    const buttons = INTERVALS.map((interval) => {
      const button = h("button", { type: "button", "aria-pressed": interval === this.interval ? "true" : "false" }, interval);
      button.addEventListener("click", () => {
        const market = this.market;
        if (interval === this.interval || market === null) {
          return;
        }
        void this.connection.call("unsubscribe", { channels: [`candles:${market.symbol}:${this.interval}`] }).catch(() => undefined);
        this.interval = interval;
        for (const other of buttons) {
          other.setAttribute("aria-pressed", other === button ? "true" : "false");
        }
        this.chartView.reset(market);
        this.heldCandles = [];
        const request = ++this.candleRequest;
        void this.connection
          .call("subscribe", { channels: [`candles:${market.symbol}:${interval}`] })
          .then(() => this.loadCandles(market, request))
          .catch((error: unknown) => {
            byId("status").textContent = String(error);
          });
      });
      return button;
    });
    group.replaceChildren(...buttons);
  }

  private receive(message: StreamMessage): void {
    const symbol = this.market?.symbol;
    switch (message.channel) {
      case "ticker":
        this.tickers.set(message.market as string, message.data as Ticker);
        this.drawMarkets();
        break;
      case "book":
        if (this.book !== null && this.book.apply(message as unknown as BookMessage) === "gap") {
          // a lost message: the book is wrong until a new snapshot, which subscribing sends
          void this.connection.call("subscribe", { channels: [`book:${this.book.market}`] }).catch(() => undefined);
        }
        this.drawBook();
        break;
      case "trades":
        if (message.market === symbol && this.tape !== null) {
          this.tape.add(message.data as Trade[]);
          this.drawTrades();
        }
        break;
      case "candles":
        if (message.market === symbol && message.interval === this.interval && message.data !== null) {
          const candle = message.data as Candle;
          if (this.heldCandles !== null) {
            this.heldCandles.push(candle);
          } else {
            this.chartView.update(candle);
          }
        }
        break;
      case "orders":
        this.account.apply(message.data as OrdersStreamData);
        this.drawAccount();
        break;
    }
  }

  private async login(credentials: Credentials): Promise<string> {
    const timestamp = Date.now() + this.clockOffsetMs;
    const result = await this.connection.call<LoginResult>("auth.login", {
      api_key: credentials.apiKey,
      timestamp,
      signature: loginSignature(credentials, timestamp),
    });
    this.credentials = credentials;
    await this.connection.call("subscribe", { channels: ["orders"] });
    const [orders, balances] = await Promise.all([this.openOrders(), this.connection.call<Balance[]>("account.balances")]);
    this.account.setOpenOrders(orders);
    this.account.setBalances(balances);
    this.drawAccount();
    try {
      const fills = await this.connection.call<{ fills: Fill[] }>("fills.history", { limit: 50 });
      this.account.addFills(fills.fills);
      this.drawAccount();
    } catch (error) {
      // a venue without a history database has no fills.history: the stream's fills only
      if (!(error instanceof ApiError && error.code === "NOT_FOUND")) {
        byId("account-message").textContent = String(error);
      }
    }
    return `${result.participant} (${result.category})`;
  }

  /** Every page of `orders.open`. */
  private async openOrders(): Promise<Order[]> {
    const orders: Order[] = [];
    let after = 0;
    for (;;) {
      const page = await this.connection.call<{ orders: Order[]; next: number | null }>("orders.open", {
        limit: 1000,
        after_order_id: after,
      });
      orders.push(...page.orders);
      if (page.next === null) {
        return orders;
      }
      after = page.next;
    }
  }

  private logout(): void {
    this.credentials = null;
    this.account.clear();
    this.drawAccount();
    this.connection.restart(); // a connection stays logged in: a new one is not
  }

  private async place(params: PlaceParams): Promise<Order> {
    if (this.credentials === null) {
      throw new ApiError("UNAUTHENTICATED", "log in first");
    }
    return this.connection.call<Order>("order.place", params);
  }
}
