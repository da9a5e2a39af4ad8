/**
 * The candle chart (lightweight-charts) with volume below, for one market and interval.
 *
 * The one place where prices become JavaScript numbers: the chart library plots numbers,
 * so each candle's decimal strings are converted with Number() for drawing only.  A
 * float's 15-16 significant digits show every KZT price to the tiyn up to ~10^13; what is
 * shown as text anywhere else on the page is the server's exact decimal string.
 */

import {
  CandlestickSeries,
  type CandlestickData,
  ColorType,
  HistogramSeries,
  type HistogramData,
  type IChartApi,
  type ISeriesApi,
  type UTCTimestamp,
  createChart,
} from "lightweight-charts";

import type { Candle, Market } from "../types";

const UP = "#16a34a";
const DOWN = "#dc2626";

function time(candle: Candle): UTCTimestamp {
  return (candle.open_time / 1000) as UTCTimestamp;
}

function bar(candle: Candle): CandlestickData {
  return {
    time: time(candle),
    open: Number(candle.open),
    high: Number(candle.high),
    low: Number(candle.low),
    close: Number(candle.close),
  };
}

function volume(candle: Candle): HistogramData {
  const up = Number(candle.close) >= Number(candle.open);
  return { time: time(candle), value: Number(candle.volume), color: up ? `${UP}80` : `${DOWN}80` };
}

export class ChartView {
  private readonly chart: IChartApi;
  private readonly candles: ISeriesApi<"Candlestick">;
  private readonly volumes: ISeriesApi<"Histogram">;
  private last = -Infinity;

  constructor(container: HTMLElement) {
    this.chart = createChart(container, {
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: "transparent" }, textColor: "#94a3b8", attributionLogo: false },
      grid: { vertLines: { color: "#1e293b" }, horzLines: { color: "#1e293b" } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#334155" },
      rightPriceScale: { borderColor: "#334155" },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      borderVisible: false,
      wickUpColor: UP,
      wickDownColor: DOWN,
    });
    this.volumes = this.chart.addSeries(HistogramSeries, {
      priceScaleId: "volume",
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  }

  /** Start over for `market`: its price decimals and tick on the axis, no candles. */
  reset(market: Market): void {
    // precision and minMove only format the axis labels (numbers, for drawing)
    this.candles.applyOptions({
      priceFormat: { type: "price", precision: market.priceScale, minMove: Number(market.tick) },
    });
    this.candles.setData([]);
    this.volumes.setData([]);
    this.last = -Infinity;
  }

  /** The history, oldest first. */
  setHistory(candles: Candle[]): void {
    this.candles.setData(candles.map(bar));
    this.volumes.setData(candles.map(volume));
    this.last = candles.length > 0 ? candles[candles.length - 1].open_time : -Infinity;
    this.chart.timeScale().scrollToRealTime();
  }

  /** A candle from the stream: the last one again, or a newer one (older ones are ignored). */
  update(candle: Candle): void {
    if (candle.open_time < this.last) {
      return;
    }
    this.last = candle.open_time;
    this.candles.update(bar(candle));
    this.volumes.update(volume(candle));
  }
}
