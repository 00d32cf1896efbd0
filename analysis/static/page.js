// One live candlestick chart per stored product, from this service's own API, and the
// largest trades. Refreshes every `?refresh=` seconds (default 5). The page keeps its
// state in window.analysisPage so that a test can compare what is drawn with the API.
"use strict";

const REFRESH_S = Number(new URLSearchParams(location.search).get("refresh")) || 5;
const page = { charts: {}, refreshes: 0 };
window.analysisPage = page;

async function getJson(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

function precisionOf(price) {
  // Enough decimals to tell ticks apart: BTC-USD prices show cents, ETH-BTC shows 6 digits.
  return price >= 1000 ? 2 : price >= 1 ? 4 : 6;
}

function addChart(product) {
  const section = document.createElement("section");
  section.className = "chart";
  section.dataset.product = product;
  section.innerHTML = `<h2>${product}<span class="last"></span></h2>` +
    `<p class="tape"></p><div class="plot"></div>`;
  document.getElementById("charts").append(section);
  const chart = LightweightCharts.createChart(section.querySelector(".plot"), {
    autoSize: true,
    layout: { background: { color: "#0f1419" }, textColor: "#d1d4dc" },
    grid: { vertLines: { color: "#1f2630" }, horzLines: { color: "#1f2630" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  const candles = chart.addSeries(LightweightCharts.CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", wickUpColor: "#26a69a",
    wickDownColor: "#ef5350", borderVisible: false,
  });
  const volume = chart.addSeries(LightweightCharts.HistogramSeries, {
    priceFormat: { type: "volume" }, priceScaleId: "", color: "#3b4a5e",
    lastValueVisible: false, priceLineVisible: false,
  });
  volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  // autoSize learns the plot's width after layout, maybe after the first fit: fitted at a
  // provisional width, the chart would keep that bar spacing and show only its last bars.
  chart.timeScale().subscribeSizeChange(() => chart.timeScale().fitContent());
  page.charts[product] = { section, chart, candles, volume };
  return page.charts[product];
}

async function drawCandles(product, granularity) {
  const view = page.charts[product] || addChart(product);
  const rows = await getJson(
    `/products/${encodeURIComponent(product)}/candles?granularity=${granularity}`);
  rows.reverse(); // the API answers newest first; the chart wants time ascending
  const bars = rows.map(([time, low, high, open, close]) => ({ time, open, high, low, close }));
  if (bars.length) {
    const precision = precisionOf(bars[bars.length - 1].close);
    view.candles.applyOptions({
      priceFormat: { type: "price", precision, minMove: 10 ** -precision },
    });
  }
  view.candles.setData(bars);
  view.volume.setData(rows.map(([time, , , open, close, volume]) => ({
    time, value: volume, color: close >= open ? "#1f4f4a" : "#5a2a2a",
  })));
  if (view.section.dataset.granularity !== String(granularity)) {
    view.chart.timeScale().fitContent(); // a new view: show every bar; later refreshes keep zoom
  }
  view.section.dataset.bars = String(bars.length);
  view.section.dataset.granularity = String(granularity);
}

async function drawTicker(product) {
  const tick = await getJson(`/products/${encodeURIComponent(product)}/ticker`);
  page.charts[product].section.querySelector(".last").textContent = `${tick.price} at ${tick.time}`;
}

// The trade tape of the last 24 h: "complete" or "N missing", and how many trades the
// repair fetched from REST (`repaired`).
function tapeText({ first_trade_id: first, missing, repaired }) {
  if (first === null) return "trade tape: no trades in the last 24 h";
  const fixed = `repaired from REST: ${repaired}`;
  return missing === 0
    ? `trade tape: complete${repaired ? `, ${fixed}` : ""}`
    : `trade tape: ${missing} missing, ${fixed}`;
}

async function drawCompleteness(product) {
  const found = await getJson(`/products/${encodeURIComponent(product)}/completeness`);
  const line = page.charts[product].section.querySelector(".tape");
  line.textContent = tapeText(found);
  line.classList.toggle("holes", found.missing > 0);
  line.dataset.missing = String(found.missing);
  line.dataset.repaired = String(found.repaired);
}

async function drawTrades() {
  const trades = await getJson("/trades/largest?hours=24&limit=10");
  const body = document.querySelector("#largest tbody");
  body.replaceChildren(...trades.map((trade) => {
    const row = document.createElement("tr");
    for (const [key, css] of [["product_id"], ["time"], ["side", trade.side], ["price"],
                              ["size"], ["notional"]]) {
      const cell = document.createElement("td");
      cell.textContent = trade[key];
      if (css) cell.className = css;
      row.append(cell);
    }
    return row;
  }));
}

let running = false;
async function refresh() {
  if (running) return; // a slow round is not stacked on by the next tick
  running = true;
  const granularity = Number(document.getElementById("granularity").value);
  try {
    const products = await getJson("/products");
    await Promise.all(products.map(async ({ id }) => {
      await drawCandles(id, granularity);
      await drawTicker(id);
      await drawCompleteness(id);
    }));
    await drawTrades();
    page.refreshes += 1;
    document.body.dataset.refreshes = String(page.refreshes);
    document.getElementById("status").textContent =
      `${products.length} products · updated ${new Date().toISOString().slice(11, 19)} UTC` +
      ` · every ${REFRESH_S} s`;
  } catch (error) {
    document.getElementById("status").textContent = `error: ${error.message}`;
    console.error(error);
  } finally {
    running = false;
  }
}

document.getElementById("granularity").addEventListener("change", refresh);
refresh();
setInterval(refresh, REFRESH_S * 1000);
