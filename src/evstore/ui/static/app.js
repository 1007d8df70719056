// The evstore viewer. Stored data is put into the page with textContent only: never as HTML.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function streamLink(id) {
  const a = el("a", id);
  a.href = "#/stream/" + encodeURIComponent(id);
  return a;
}

async function api(path, params) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  }
  const headers = token ? { "X-Evstore-Token": token } : {};
  const response = await fetch(url, { headers });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  showError(null);
  return body;
}

function showError(error) {
  const p = $("error");
  p.hidden = !error;
  p.textContent = error ? String(error.message || error) : "";
}

function liveSource(params) {
  const url = new URL("/api/live", location.origin);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  if (token) url.searchParams.set("token", token);
  return new EventSource(url);
}

// -- overview: stats and the chart -------------------------------------------------------

async function showOverview() {
  const info = await api("/api/stats");
  $("where").textContent = info.backend + " · " + (info.url || "");
  const body = $("stats").tBodies[0];
  body.replaceChildren();
  body.appendChild(row(["backend", info.backend]));
  body.appendChild(row(["log partitions", info.partitions]));
  for (const [key, value] of Object.entries(info.stats)) body.appendChild(row([key, value]));
  await drawChart();
}

async function drawChart() {
  const { points, interval } = await api("/api/history");
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = ctx.strokeStyle = "#888";
  ctx.strokeRect(pad, 5, w - pad - 5, h - pad);
  const lagOf = (p) => Math.max(0, ...Object.values(p.lags));
  const maxRate = Math.max(1, ...points.map((p) => p.rate));
  const maxLag = Math.max(1, ...points.map(lagOf));
  const n = Math.max(points.length, 2);
  const x = (i) => pad + ((w - pad - 5) * i) / (n - 1);
  const y = (v, top) => 5 + (h - pad) * (1 - v / top);
  ctx.fillStyle = "#2a6ad4aa";
  points.forEach((p, i) => {
    const top = y(p.rate, maxRate);
    ctx.fillRect(x(i) - 2, top, 4, 5 + h - pad - top);
  });
  ctx.strokeStyle = "#d4602a";
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(i), y(lagOf(p), maxLag)) : ctx.moveTo(x(i), y(lagOf(p), maxLag))));
  ctx.stroke();
  ctx.fillStyle = "#888";
  ctx.fillText(maxRate.toFixed(1) + "/s", 2, 14);
  ctx.fillText("last " + Math.round(points.length * interval) + " s", pad, h - 8);
  $("chart-legend").textContent =
    points.length + " samples every " + interval + " s; peak " + maxRate.toFixed(1) +
    " appends/s (blue bars), largest lag " + maxLag + " events (orange line)";
}

// -- streams: search and paging ----------------------------------------------------------

let streamsAfter = null;

async function showStreams(after) {
  const q = $("search-q").value;
  const page = await api("/api/streams", { q, after, limit: 50 });
  const body = $("streams").tBodies[0];
  body.replaceChildren();
  for (const s of page.streams) body.appendChild(row([streamLink(s.stream_id), s.version, s.state]));
  if (!page.streams.length) body.appendChild(row(["no streams", "", ""]));
  streamsAfter = page.next;
  $("streams-next").disabled = !page.next;
}

// -- one stream, live ---------------------------------------------------------------------

let source = null;
let streamNext = null;

function eventCard(e, fresh) {
  const card = el("article", null, fresh ? "event fresh" : "event");
  card.dataset.version = e.version;
  card.appendChild(el("h3", "#" + e.version + " " + e.type));
  const dl = document.createElement("dl");
  for (const [k, v] of [["position", e.position], ["event id", e.event_id],
                        ["occurred", e.occurred_at], ["recorded", e.recorded_at],
                        ["schema version", e.schema_version]]) {
    dl.appendChild(el("dt", k));
    dl.appendChild(el("dd", v));
  }
  card.appendChild(dl);
  card.appendChild(el("div", "data", "muted"));
  card.appendChild(el("pre", JSON.stringify(e.data, null, 2), "data"));
  if (e.metadata && Object.keys(e.metadata).length) {
    card.appendChild(el("div", "metadata", "muted"));
    card.appendChild(el("pre", JSON.stringify(e.metadata, null, 2), "metadata"));
  }
  return card;
}

async function showStream(id, from) {
  const page = await api("/api/stream", { id, from: from || 1, limit: 100 });
  $("stream-id").textContent = id;
  $("stream-version").textContent = page.version;
  const list = $("stream-events");
  if (!from) list.replaceChildren();
  const seen = new Set([...list.children].map((c) => c.dataset.version));
  for (const e of page.events) if (!seen.has(String(e.version))) list.appendChild(eventCard(e, false));
  streamNext = page.next;
  $("stream-more").hidden = !page.next;
  if (!from) {
    const last = page.events[page.events.length - 1];
    const after = page.next || !last ? { after: 0 } : { after: last.position, partition: last.partition };
    source = liveSource({ stream: id, ...after });
    source.addEventListener("event", (message) => {
      const e = JSON.parse(message.data);
      if (list.querySelector('[data-version="' + Number(e.version) + '"]')) return;
      if (streamNext) return; // older pages still to load: the event comes with them
      list.appendChild(eventCard(e, true));
      $("stream-version").textContent = e.version;
    });
  }
}

// -- the global log, live ------------------------------------------------------------------

function showLive() {
  const body = $("live").tBodies[0];
  body.replaceChildren();
  $("live-state").textContent = "connecting";
  source = liveSource({});
  source.onopen = () => { $("live-state").textContent = "following"; };
  source.onerror = () => { $("live-state").textContent = "reconnecting"; };
  source.addEventListener("event", (message) => {
    const e = JSON.parse(message.data);
    const tr = row([e.position, streamLink(e.stream_id), e.version, e.type, e.recorded_at,
                    el("span", JSON.stringify(e.data))]);
    tr.cells[5].className = "data";
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > 500) body.deleteRow(-1);
  });
}

// -- subscriptions ----------------------------------------------------------------------------

async function showSubscriptions() {
  const { subscriptions } = await api("/api/subscriptions");
  const body = $("subscriptions").tBodies[0];
  body.replaceChildren();
  for (const s of subscriptions) {
    const parked = el("a", s.parked);
    parked.href = "#/subscriptions";
    parked.addEventListener("click", (ev) => { ev.preventDefault(); showParked(s.name).catch(showError); });
    body.appendChild(row([s.name, s.position, (s.lag_capped ? "≥ " : "") + s.lag, parked]));
  }
  if (!subscriptions.length) body.appendChild(row(["no named subscriptions", "", "", ""]));
}

async function showParked(name) {
  const { parked } = await api("/api/parked", { name });
  $("parked-name").textContent = name;
  $("parked-title").hidden = $("parked").hidden = false;
  const body = $("parked").tBodies[0];
  body.replaceChildren();
  for (const p of parked) {
    body.appendChild(row([p.position, streamLink(p.stream_id), p.version, p.type, p.attempts,
                          p.error, p.parked_at]));
  }
}

// -- routing ----------------------------------------------------------------------------------

let timer = null;

async function route() {
  if (source) { source.close(); source = null; }
  if (timer) { clearInterval(timer); timer = null; }
  const hash = location.hash || "#/";
  let view = "overview";
  if (hash.startsWith("#/stream/")) view = "stream";
  else if (hash === "#/streams") view = "streams";
  else if (hash === "#/live") view = "live";
  else if (hash === "#/subscriptions") view = "subscriptions";
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== "view-" + view;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.id === "nav-" + view);
  try {
    if (view === "stream") await showStream(decodeURIComponent(hash.slice("#/stream/".length)));
    else if (view === "streams") await showStreams(null);
    else if (view === "live") showLive();
    else if (view === "subscriptions") { await showSubscriptions(); timer = setInterval(() => showSubscriptions().catch(showError), 5000); }
    else { await showOverview(); timer = setInterval(() => showOverview().catch(showError), 5000); }
  } catch (error) {
    showError(error);
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("submit", (ev) => { ev.preventDefault(); showStreams(null).catch(showError); });
  $("streams-first").addEventListener("click", () => showStreams(null).catch(showError));
  $("streams-next").addEventListener("click", () => showStreams(streamsAfter).catch(showError));
  $("stream-more").addEventListener("click", () => {
    showStream(decodeURIComponent(location.hash.slice("#/stream/".length)), streamNext).catch(showError);
  });
  route();
});
