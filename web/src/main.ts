/**
 * The entry point: learn where the websocket is (config.json, written by `alatau serve`:
 * its port and scheme; the host is the one this page came from), then start the page.
 * `?ws=ws://host:port` overrides it (the Vite dev server, docs/web.md).
 */

import "./style.css";

import { Connection } from "./connection";
import { TradingPage } from "./page";

interface PageConfig {
  websocket_port: number;
  websocket_scheme: "ws" | "wss";
}

async function websocketUrl(): Promise<string> {
  const override = new URLSearchParams(location.search).get("ws");
  if (override !== null) {
    return override;
  }
  const response = await fetch("config.json", { cache: "no-store" });
  const config = (await response.json()) as PageConfig;
  // location.hostname keeps an IPv6 address's brackets
  return `${config.websocket_scheme}://${location.hostname}:${config.websocket_port}`;
}

websocketUrl().then(
  (url) => {
    new TradingPage(new Connection(url)).start();
  },
  (error: unknown) => {
    const status = document.getElementById("status");
    if (status !== null) {
      status.textContent = `cannot find the venue's websocket: ${String(error)}`;
    }
  },
);
