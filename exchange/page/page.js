// The venue's live order-book page: one section per symbol, fed by /ws/market (no polling).
//
// Numbers. The venue writes prices and quantities as exact decimal JSON numbers. The page shows
// them with the symbol's own decimals (those of its tick for prices, of its lot for quantities)
// through toFixed, which is exact here: a decimal with d digits after the point, parsed to the
// nearest double, is within half a unit of its last digit as long as |x| * 10^d < 2^52, so
// toFixed(d) gives back exactly the venue's digits (padded with zeros: the columns align). A
// number past that bound is shown as JavaScript prints it. The mid is computed in integer
// units of the tick, so it is exact too (one more decimal when it falls between two ticks).
"use strict";

const BOOK_LEVELS = 10; // shown a side
const TRADES_SHOWN = 30;
const CHART_POINTS = 20000; // a series past this is thinned evenly (every other point)
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 2000;

const symbols = new Map(); // name -> state
let socket = null;
let reconnectDelay = RECONNECT_MIN_MS;

function decimalsOf(text) {
  const s = String(text);
  const dot = s.indexOf(".");
  return dot < 0 ? 0 : s.length - dot - 1;
}

function fixed(x, d) {
  if (x === null || x === undefined) return "–";
  if (Math.abs(x) * 10 ** d >= 2 ** 52) return String(x);
  return x.toFixed(d);
}

// An integer count of 10^-d units as exact decimal text.
function scaled(units, d) {
  const neg = units < 0;
  let s = String(Math.abs(units)).padStart(d + 1, "0");
  if (d > 0) s = s.slice(0, s.length - d) + "." + s.slice(s.length - d);
  return (neg ? "-" : "") + s;
}

function timeOf(iso) {
  // "YYYY-MM-DDTHH:MM:SS.ffffffZ" -> epoch ms (the microseconds cut to milliseconds)
  return Date.parse(iso.slice(0, 23) + "Z");
}

function hms(iso) {
  return iso.slice(11, 23);
}

// A bounded series that stays evenly spaced over its whole life (as the venue's History).
class Series {
  constructor(cap) { this.cap = cap; this.points = []; this.step = 1; this.seen = 0; }
  reset(points) {
    this.points = points.slice(); this.step = 1; this.seen = points.length;
    while (this.points.length >= this.cap) this.thin();
  }
  thin() { this.points = this.points.filter((_, i) => i % 2 === 0); this.step *= 2; }
  add(point) {
    const seen = this.seen++;
    if (seen % this.step) {
      this.points[this.points.length - 1] = point; // keep the latest value visible
      return;
    }
    this.points.push(point);
    if (this.points.length >= this.cap) this.thin();
  }
}

function newSymbol(name, info) {
  const template = document.getElementById("symbol-template");
  const section = template.content.firstElementChild.cloneNode(true);
  section.dataset.symbol = name;
  section.querySelector(".name").textContent = name;
  const st = {
    name, section,
    tickDec: decimalsOf(info.tick), lotDec: decimalsOf(info.lot),
    tick: info.tick, lot: info.lot,
    bids: new Map(), asks: new Map(), // price text -> [price, quantity]
    trades: [], // newest first
    mids: new Series(CHART_POINTS), // [ms, bid, ask]
    tradePoints: new Series(CHART_POINTS), // [ms, price, side]
    dirty: true,
  };
  section.querySelector(".specs").textContent = `tick ${info.tick} · lot ${info.lot}`;
  const place = section.querySelector("form.place");
  place.price.placeholder = info.tick;
  place.quantity.placeholder = info.lot;
  place.type.addEventListener("change", () => {
    place.price.disabled = place.type.value === "MARKET";
  });
  place.addEventListener("submit", (ev) => { ev.preventDefault(); placeOrder(st); });
  section.querySelector("form.cancel").addEventListener("submit", (ev) => {
    ev.preventDefault(); cancelOrder(st);
  });
  return st;
}

function loadSnapshot(msg) {
  document.getElementById("venue").textContent = msg.venue;
  document.title = `${msg.venue}: live order books`;
  const main = document.getElementById("symbols");
  for (const [name, st] of symbols) { // a venue restarted with other symbols
    if (!(name in msg.symbols)) { st.section.remove(); symbols.delete(name); }
  }
  for (const [name, info] of Object.entries(msg.symbols)) {
    let st = symbols.get(name);
    if (!st) {
      st = newSymbol(name, info);
      symbols.set(name, st);
      main.appendChild(st.section);
    }
    st.bids.clear(); st.asks.clear();
    for (const [p, q] of info.bids) st.bids.set(fixed(p, st.tickDec), [p, q]);
    for (const [p, q] of info.asks) st.asks.set(fixed(p, st.tickDec), [p, q]);
    st.trades = info.trades.slice().reverse().slice(0, TRADES_SHOWN);
    const history = info.history || { mids: [], trades: [] };
    let mids = history.mids.map(([t, b, a]) => [timeOf(t), b, a]);
    // the detailed recent tops after the history's last point
    const last = mids.length ? mids[mids.length - 1][0] : -Infinity;
    for (const top of info.tops) {
      const t = timeOf(top.time);
      if (t > last) mids.push([t, top.bid_price, top.ask_price]);
    }
    // A venue's mids start with its process: the page keeps what it saw before a restart,
    // with a gap (null) for the time the venue was away.
    const first = mids.length ? mids[0][0] : Infinity;
    const earlier = st.mids.points.filter((m) => m[0] < first);
    if (earlier.length) mids = [...earlier, [earlier[earlier.length - 1][0] + 1, 0, 0], ...mids];
    st.mids.reset(mids);
    st.tradePoints.reset(history.trades.map(([t, p, , side]) => [timeOf(t), p, side]));
    st.dirty = true;
  }
  schedule();
}

function applyEvents(events) {
  for (const e of events) {
    const st = symbols.get(e.symbol);
    if (!st) continue;
    if (e.type === "level") {
      const book = e.side === "bid" ? st.bids : st.asks;
      const key = fixed(e.price, st.tickDec);
      if (e.quantity === 0) book.delete(key); else book.set(key, [e.price, e.quantity]);
    } else if (e.type === "trade") {
      st.trades.unshift(e);
      if (st.trades.length > TRADES_SHOWN) st.trades.length = TRADES_SHOWN;
      st.tradePoints.add([timeOf(e.time), e.price, e.aggressor_side]);
    } else if (e.type === "top") {
      st.mids.add([timeOf(e.time), e.bid_price, e.ask_price]);
    }
    st.dirty = true;
  }
  schedule();
}

let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    for (const st of symbols.values()) {
      if (st.dirty) { st.dirty = false; render(st); }
    }
  });
}

function sortedLevels(book, descending) {
  const levels = [...book.values()];
  levels.sort((x, y) => (descending ? y[0] - x[0] : x[0] - y[0]));
  return levels.slice(0, BOOK_LEVELS);
}

function units(x, d) {
  return Math.round(x * 10 ** d);
}

function render(st) {
  const s = st.section;
  const bids = sortedLevels(st.bids, true);
  const asks = sortedLevels(st.asks, false);
  const maxQ = Math.max(1e-300, ...bids.map((l) => l[1]), ...asks.map((l) => l[1]));
  const row = (side, [p, q]) => {
    const tr = document.createElement("tr");
    tr.className = side;
    const width = ((100 * q) / maxQ).toFixed(1);
    tr.innerHTML = `<td class="price"></td><td class="qty"></td><td class="bar"><div style="width:${width}%"></div></td>`;
    tr.children[0].textContent = fixed(p, st.tickDec);
    tr.children[1].textContent = fixed(q, st.lotDec);
    return tr;
  };
  // asks: best (lowest) nearest the spread, at the bottom
  s.querySelector("tbody.asks").replaceChildren(...asks.slice().reverse().map((l) => row("ask", l)));
  s.querySelector("tbody.bids").replaceChildren(...bids.map((l) => row("bid", l)));
  let spreadText = "–", midText = "–";
  if (bids.length && asks.length) {
    const b = units(bids[0][0], st.tickDec), a = units(asks[0][0], st.tickDec);
    spreadText = scaled(a - b, st.tickDec);
    const sum = a + b; // mid = sum / 2 in ticks
    midText = sum % 2 === 0 ? scaled(sum / 2, st.tickDec) : scaled(sum * 5, st.tickDec + 1);
  }
  s.querySelector(".spread-cell").textContent =
    bids.length || asks.length ? `spread ${spreadText}` : "empty book";
  s.querySelector(".spread").textContent = spreadText;
  s.querySelector(".mid").textContent = midText;
  s.querySelector(".last").textContent = st.trades.length ? fixed(st.trades[0].price, st.tickDec) : "–";
  const trows = st.trades.map((t) => {
    const tr = document.createElement("tr");
    tr.className = `side-${t.aggressor_side}`;
    tr.dataset.tradeId = t.trade_id;
    tr.innerHTML = `<td class="time"></td><td class="side-${t.aggressor_side}"></td><td class="price"></td><td class="qty"></td>`;
    tr.children[0].textContent = hms(t.time);
    tr.children[1].textContent = t.aggressor_side;
    tr.children[2].textContent = fixed(t.price, st.tickDec);
    tr.children[3].textContent = fixed(t.quantity, st.lotDec);
    return tr;
  });
  s.querySelector(".trades tbody").replaceChildren(...trows);
  drawChart(st);
}

function drawChart(st) {
  const canvas = st.section.querySelector("canvas.chart");
  const ratio = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 600, cssH = canvas.clientHeight || 260;
  if (canvas.width !== Math.round(cssW * ratio) || canvas.height !== Math.round(cssH * ratio)) {
    canvas.width = Math.round(cssW * ratio);
    canvas.height = Math.round(cssH * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, cssW, cssH);
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const mids = st.mids.points.map(([t, b, a]) => [t, b > 0 && a > 0 ? (b + a) / 2 : null]);
  const trades = st.tradePoints.points;
  const ys = [...mids.filter((m) => m[1] !== null).map((m) => m[1]), ...trades.map((t) => t[1])];
  const ts = [...mids.map((m) => m[0]), ...trades.map((t) => t[0])];
  const left = 8, right = 80, top = 8, bottom = 22;
  const w = cssW - left - right, h = cssH - top - bottom;
  g.font = "11px ui-monospace, monospace";
  g.fillStyle = color("--muted");
  if (!ys.length) {
    g.fillText("no mid price yet (one side of the book is empty)", left + 8, top + h / 2);
    return;
  }
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  const pad = y1 > y0 ? (y1 - y0) * 0.08 : Math.max(Number(st.tick), Math.abs(y0) * 0.001) * 5;
  y0 -= pad; y1 += pad;
  const t0 = Math.min(...ts), t1 = Math.max(Date.now(), Math.max(...ts), t0 + 1000);
  const X = (t) => left + ((t - t0) / (t1 - t0)) * w;
  const Y = (y) => top + (1 - (y - y0) / (y1 - y0)) * h;
  // grid and labels
  g.strokeStyle = color("--line");
  g.lineWidth = 1;
  g.textBaseline = "middle";
  // price lines at round multiples of the tick: 1, 2 or 5 times a power of ten
  const tick = Number(st.tick);
  let step = tick;
  for (const k of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6,
    1e7, 1e8]) {
    step = tick * k;
    if ((y1 - y0) / step <= 5) break;
  }
  const stepUnits = Math.round(step * 10 ** st.tickDec);
  for (let u = Math.ceil((y0 * 10 ** st.tickDec) / stepUnits) * stepUnits;
    u <= y1 * 10 ** st.tickDec; u += stepUnits) {
    const y = u / 10 ** st.tickDec;
    g.beginPath(); g.moveTo(left, Y(y)); g.lineTo(left + w, Y(y)); g.stroke();
    g.fillText(scaled(u, st.tickDec), left + w + 6, Y(y));
  }
  g.textBaseline = "top";
  const short = t1 - t0 < 20000; // under 20 s: tenths of a second
  for (let i = 0; i <= 3; i++) {
    const t = t0 + ((t1 - t0) * i) / 3;
    const label = new Date(t).toISOString().slice(11, short ? 21 : 19);
    g.textAlign = i === 0 ? "left" : i === 3 ? "right" : "center";
    g.fillText(label, X(t), top + h + 6);
  }
  g.textAlign = "left";
  // the mid: a step line, broken where a side of the book was empty
  g.strokeStyle = color("--mid");
  g.lineWidth = 1.5;
  g.beginPath();
  let drawing = false, prevY = 0;
  for (const [t, m] of mids) {
    if (m === null) { drawing = false; continue; }
    if (!drawing) { g.moveTo(X(t), Y(m)); drawing = true; }
    else { g.lineTo(X(t), prevY); g.lineTo(X(t), Y(m)); }
    prevY = Y(m);
  }
  if (drawing) g.lineTo(X(t1), prevY);
  g.stroke();
  // trades: dots, by aggressor side
  for (const [t, p, side] of trades) {
    g.fillStyle = color(side === "BUY" ? "--bid" : "--ask");
    g.beginPath(); g.arc(X(t), Y(p), 3, 0, 2 * Math.PI); g.fill();
  }
}

// ---- orders -------------------------------------------------------------------------------

function showReply(st, ok, text) {
  const out = st.section.querySelector(".reply");
  out.className = `reply ${ok ? "ok" : "error"}`;
  out.textContent = text;
}

function describe(st, order) {
  const price = order.price === null ? "" : ` @ ${fixed(order.price, st.tickDec)}`;
  return `order ${order.id} ${order.side} ${order.type} ${order.time_in_force} ` +
    `${fixed(order.quantity, st.lotDec)}${price}: ${order.status}, ` +
    `remaining ${fixed(order.remaining, st.lotDec)}` +
    (order.fills.length ? `, ${order.fills.length} fill(s)` : "");
}

async function send(st, path, body) {
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let value = null;
    try { value = JSON.parse(text); } catch { /* not JSON: shown as it is */ }
    if (response.ok && value && value.id !== undefined) {
      showReply(st, true, `${response.status}: ${describe(st, value)}\n${text}`);
      return value;
    }
    const reason = value && value.error ? value.error : text;
    showReply(st, false, `${response.status} error: ${reason}`);
  } catch (err) {
    showReply(st, false, `error: the venue cannot be reached (${err.message})`);
  }
  return null;
}

async function placeOrder(st) {
  const f = st.section.querySelector("form.place");
  // numbers go as the decimal strings typed: the venue reads them exactly
  const body = { symbol: st.name, side: f.side.value, type: f.type.value,
    time_in_force: f.time_in_force.value, quantity: f.quantity.value.trim() };
  if (f.type.value === "LIMIT") body.price = f.price.value.trim();
  const order = await send(st, "/api/orders", body);
  if (order) st.section.querySelector("form.cancel").order.value = order.id;
}

async function cancelOrder(st) {
  const id = st.section.querySelector("form.cancel").order.value.trim();
  if (!/^[0-9]+$/.test(id)) {
    showReply(st, false, "error: an order id is a whole number");
    return;
  }
  await send(st, `/api/orders/${id}/cancel`);
}

// ---- the feed -----------------------------------------------------------------------------

function setStatus(kind, text) {
  const el = document.getElementById("status");
  el.className = `status ${kind}`;
  el.textContent = text;
  document.body.classList.toggle("disconnected-page", kind !== "live");
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/market`);
  socket = ws;
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "snapshot") {
      loadSnapshot(msg);
      reconnectDelay = RECONNECT_MIN_MS;
      setStatus("live", "live");
    } else if (msg.type === "events") {
      applyEvents(msg.events);
    }
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    setStatus("disconnected", "disconnected, reconnecting…");
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_MAX_MS);
  };
  ws.onerror = () => { /* onclose follows */ };
}

window.addEventListener("resize", () => {
  for (const st of symbols.values()) st.dirty = true;
  schedule();
});
// the chart's time axis runs to now even when nothing trades
setInterval(() => {
  for (const st of symbols.values()) drawChart(st);
}, 5000);
connect();
