// The dashboard page served at / on the metrics port: one self-contained HTML document (inline
// style and script, no external assets, no build step) that polls /dashboard.json every second
// (stats/dashboard-data.ts) and redraws pools, servers, rates, latency, memory (under --workers
// also each worker's memory, CPU, event-loop lag and start time) and reloads.
// Data is written with textContent only (server names come from the config file). Laid out for
// phones first: cards that wrap, tables that scroll sideways; light and dark colour schemes,
// each with text contrast of at least 4.5:1; states are spelled out, never colour alone.

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>buncracker dashboard</title>
<style>
:root { --bg: #f5f6f8; --card: #ffffff; --text: #1b1f24; --muted: #4a5361; --line: #d5d9e0;
  --up-bg: #e1f3e6; --up: #0b5d27; --fail-bg: #fff0d1; --fail: #6b4100; --ej-bg: #fde4e6; --ej: #9b1020;
  --accent: #1f5fbf; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #111418; --card: #1b2027; --text: #e8ebef; --muted: #aab3bf; --line: #333b46;
    --up-bg: #12361f; --up: #9be3b0; --fail-bg: #3d2c05; --fail: #ffd580; --ej-bg: #45121a; --ej: #ffb3bc;
    --accent: #8cb8ff; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  background: var(--bg); color: var(--text); }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 12px 16px; }
h1 { font-size: 1.4rem; margin: 0; }
h2 { font-size: 1.15rem; margin: 0 0 8px; }
.sub, .status { color: var(--muted); margin: 2px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; margin: 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card dt { color: var(--muted); font-size: .85rem; }
.card dd { margin: 2px 0 0; font-size: 1.3rem; font-variant-numeric: tabular-nums; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px; margin: 14px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding-bottom: 6px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-weight: 600; font-size: .85rem; }
td.num, th.num { text-align: right; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: .85rem; }
.state-up { background: var(--up-bg); color: var(--up); }
.state-failing { background: var(--fail-bg); color: var(--fail); }
.state-ejected, .state-down { background: var(--ej-bg); color: var(--ej); }
.pool-line { color: var(--muted); margin: 0 0 8px; }
svg { width: 100%; height: 60px; display: block; }
svg polyline { fill: none; stroke: var(--accent); stroke-width: 2; }
a { color: var(--accent); }
</style>
</head>
<body>
<header>
  <h1>buncracker</h1>
  <p class="sub" id="about">loading…</p>
  <p class="status" id="status" role="status" aria-live="polite">connecting…</p>
</header>
<main>
  <dl class="cards" aria-label="Totals">
    <div class="card"><dt>Requests/s</dt><dd id="t-rps">–</dd></div>
    <div class="card"><dt>Errors/s</dt><dd id="t-eps">–</dd></div>
    <div class="card"><dt>Client connections</dt><dd id="t-clients">–</dd></div>
    <div class="card"><dt>All connections</dt><dd id="t-conns">–</dd></div>
    <div class="card"><dt>Memory (RSS)</dt><dd id="t-rss">–</dd></div>
    <div class="card"><dt>Config generation</dt><dd id="t-gen">–</dd></div>
  </dl>
  <section aria-labelledby="h-workers" id="workers" hidden>
    <h2 id="h-workers">Workers</h2>
    <div class="scroll"><table>
      <caption>Each worker's process, as of its last report (memory above: supervisor and workers)</caption>
      <thead><tr><th scope="col">Worker</th><th scope="col" class="num">Pid</th><th scope="col" class="num">Memory (RSS)</th><th scope="col" class="num">Heap used</th><th scope="col" class="num">CPU</th><th scope="col" class="num">Loop lag</th><th scope="col" class="num">Started</th></tr></thead>
      <tbody></tbody>
    </table></div>
  </section>
  <section aria-labelledby="h-rate">
    <h2 id="h-rate">Requests per second, last minute</h2>
    <svg id="spark" viewBox="0 0 600 60" preserveAspectRatio="none" role="img" aria-label="no data yet"><polyline points=""/></svg>
  </section>
  <div id="pools"></div>
  <section aria-labelledby="h-reloads">
    <h2 id="h-reloads">Configuration</h2>
    <p class="pool-line" id="loaded"></p>
    <div class="scroll"><table id="reloads">
      <caption>Reloads, newest first (SIGUSR1 or POST /reload)</caption>
      <thead><tr><th scope="col">When</th><th scope="col">Result</th><th scope="col" class="num">Generation</th><th scope="col">Changes or reason</th></tr></thead>
      <tbody></tbody>
    </table></div>
  </section>
</main>
<footer class="sub">Data: <a href="/dashboard.json">/dashboard.json</a> · <a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a></footer>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};
const num = (n) => n >= 100 ? Math.round(n).toLocaleString("en") : String(Math.round(n * 10) / 10);
const us = (v) => v === null ? "–" : v >= 1000000 ? (v / 1e6).toFixed(2) + " s" : v >= 1000 ? (v / 1000).toFixed(1) + " ms" : v + " µs";
const bytes = (b) => (b / 1048576).toFixed(1) + " MB";
const time = (iso) => new Date(iso).toLocaleTimeString();
/** A coloured label: kind picks the colours (up, failing, ejected, down), text says it. */
const badge = (kind, text) => el("span", { class: "state state-" + kind }, text);
const cell = (text, cls) => el("td", cls ? { class: cls } : {}, text);

function poolSection(p, windows) {
  const h = el("h2", { id: "pool-" + p.name }, "Pool " + p.name + " ",
    p.listening ? badge("up", "listening") : badge("down", "not listening"));
  const line = el("p", { class: "pool-line" },
    num(p.requestsPerSec) + " req/s · " + num(p.errorsPerSec) + " errors/s · " + p.clientConnections +
    " clients · latency p50 " + us(p.latency.p50) + ", p90 " + us(p.latency.p90) + ", p99 " + us(p.latency.p99) +
    " (last " + windows.latencySec + " s)");
  const head = el("tr", {}, ...["Server", "Address", "State", "Connections", "Req/s", "Errors/s", "p50", "p99"]
    .map((t, i) => el("th", i > 2 ? { scope: "col", class: "num" } : { scope: "col" }, t)));
  const rows = p.servers.map((s) => el("tr", { "data-server": s.name, "data-state": s.state },
    el("th", { scope: "row" }, s.name), cell(s.address ?? "–"),
    el("td", {}, badge(s.state, s.state)), cell(String(s.connections), "num"), cell(num(s.requestsPerSec), "num"),
    cell(num(s.errorsPerSec), "num"), cell(us(s.latency.p50), "num"), cell(us(s.latency.p99), "num")));
  const table = el("table", {}, el("caption", {}, "Servers of pool " + p.name), el("thead", {}, head), el("tbody", {}, ...rows));
  return el("section", { "aria-labelledby": "pool-" + p.name, "data-pool": p.name }, h, line, el("div", { class: "scroll" }, table));
}

function render(d) {
  $("about").textContent = "version " + d.version + " · " + d.runtime + " · pid " + d.pid + " · up " + d.uptimeSec + " s";
  let rps = 0, eps = 0, clients = 0;
  for (const p of d.pools) { rps += p.requestsPerSec; eps += p.errorsPerSec; clients += p.clientConnections; }
  $("t-rps").textContent = num(rps);
  $("t-eps").textContent = num(eps);
  $("t-clients").textContent = String(clients);
  $("t-conns").textContent = String(d.connections.current);
  $("t-rss").textContent = bytes(d.memory.rssBytes);
  $("t-gen").textContent = String(d.config.generation);
  $("workers").hidden = !d.workers;
  $("workers").querySelector("tbody").replaceChildren(...(d.workers || []).map((w) => el("tr", { "data-worker": String(w.index) },
    el("th", { scope: "row" }, String(w.index)), cell(String(w.pid), "num"), cell(bytes(w.rssBytes), "num"),
    cell(bytes(w.heapUsedBytes), "num"), cell(w.cpuSeconds.toFixed(1) + " s", "num"), cell(us(Math.round(w.loopLagSeconds * 1e6)), "num"), cell(time(w.startedAt), "num"))));
  $("pools").replaceChildren(...d.pools.map((p) => poolSection(p, d.windows)));
  const max = Math.max(1, ...d.history.map((h) => h.requestsPerSec));
  const n = Math.max(1, d.history.length - 1);
  $("spark").firstChild.setAttribute("points", d.history.map((h, i) => (i / n * 600).toFixed(1) + "," + (58 - h.requestsPerSec / max * 56).toFixed(1)).join(" "));
  $("spark").setAttribute("aria-label", "requests per second over the last " + d.history.length + " s, peak " + num(max) + ", now " + num(rps));
  $("loaded").textContent = "Generation " + d.config.generation + (d.config.loadedAt ? ", loaded " + time(d.config.loadedAt) : "");
  const reloads = d.config.reloads.map((r) => el("tr", {}, cell(time(r.at)),
    el("td", {}, r.applied ? badge("up", "applied") : badge("ejected", "rejected")),
    cell(String(r.generation), "num"), cell(r.detail)));
  $("reloads").tBodies[0].replaceChildren(...(reloads.length ? reloads : [el("tr", {}, el("td", { colspan: "4" }, "none since start"))]));
}

async function poll() {
  try {
    const r = await fetch("/dashboard.json", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const d = await r.json();
    render(d);
    $("status").textContent = "live, updated " + time(d.now);
  } catch (e) {
    $("status").textContent = "not updating: " + e.message + " (retrying)";
  }
  setTimeout(poll, 1000);
}
poll();
</script>
</body>
</html>
`;
