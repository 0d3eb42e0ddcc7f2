// qmulti dashboard: renders the page named by <body data-page>, from /api/snapshot and
// then from every /api/stream event (server-sent events), without reloads.
// All user data (task names, arguments, bodies) goes through textContent, never HTML.
"use strict";

const PAGE = document.body.dataset.page;
const TASK = document.body.dataset.task;
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const COLORS = ["#2d5bd3", "#b3261e", "#1d7a46", "#9a6700", "#7b3fb5", "#00838f", "#c2185b"];
let history = [];
let lastSnap = null;

function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const kid of kids) {
    if (kid === null || kid === undefined) continue;
    node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return node;
}

function dash(v) { return v === null || v === undefined ? "-" : v; }
function secs(v) {
  if (v === null || v === undefined) return "-";
  v = Math.floor(v);
  const d = Math.floor(v / 86400), h = Math.floor(v % 86400 / 3600);
  const m = Math.floor(v % 3600 / 60), s = v % 60;
  if (d) return `${d}d${String(h).padStart(2, "0")}h`;
  if (h) return `${h}h${String(m).padStart(2, "0")}m`;
  return m ? `${m}m${String(s).padStart(2, "0")}s` : `${s}s`;
}
function bytes(v) {
  if (v === null || v === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i ? `${v.toFixed(1)}${units[i]}` : `${v}B`;
}
function rate(v) { return v === null || v === undefined ? "-" : `${v.toFixed(1)}/s`; }
function when(t) { return t ? new Date(t * 1000).toISOString().replace(".000", "") : "-"; }

function table(head, rows, id) {
  const thead = el("thead", {}, el("tr", {}, ...head.map(h => el("th", { text: h }))));
  const body = el("tbody", {});
  for (const r of rows) body.append(r);
  const t = el("table", id ? { id } : {}, thead, body);
  return t;
}
function td(v, cls) { return el("td", cls ? { class: cls } : {}, v); }

function show(text, error) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = "message" + (error ? " error" : "");
  box.hidden = false;
}

async function act(url, body) {
  try {
    const resp = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
      body: JSON.stringify(body || {}),
    });
    const doc = await resp.json().catch(() => ({ ok: false, error: resp.statusText }));
    show(doc.ok ? doc.message : `failed: ${doc.error}`, !doc.ok);
    return doc;
  } catch (err) {
    show(`failed: ${err}`, true);
    return { ok: false };
  }
}

// -- pages -------------------------------------------------------------------------------
const render = {
  nodes(snap) {
    const rows = snap.nodes.map(n => el("tr", { "data-node": n.name },
      td(n.name), td(dash(n.host) + (n.local ? "" : " (remote)")),
      td(n.state, "state-" + n.state), td(dash(n.pid), "num"), td(secs(n.uptime), "num"),
      td(bytes(n.rss), "num"), el("td", { class: "num pool" }, dash(n.pool)),
      td(dash(n.busy), "num busy"), td(dash(n.processed), "num processed"),
      td(dash(n.failed), "num"), td(`${n.heartbeat_age.toFixed(1)}s`, "num"),
      td(n.queues.join(", ")),
      el("td", {},
        el("button", { class: "grow", title: "one more pool child",
                       onclick: () => act(`/api/nodes/${encodeURIComponent(n.name)}/pool_grow`, { n: 1 }) }, "+1"),
        " ",
        el("button", { class: "shrink", title: "one fewer pool child",
                       onclick: () => act(`/api/nodes/${encodeURIComponent(n.name)}/pool_shrink`, { n: 1 }) }, "-1"),
        " ",
        el("button", { class: "danger shutdown", title: "warm shutdown",
                       onclick: () => confirm(`Warm shutdown of ${n.name}?`) &&
                         act(`/api/nodes/${encodeURIComponent(n.name)}/shutdown`) }, "shutdown"))));
    return [el("h2", { text: `Nodes (${snap.nodes.length})` }),
      table(["node", "host", "state", "pid", "uptime", "rss", "pool", "busy", "processed",
             "failed", "heartbeat", "queues", "actions"], rows, "nodes")];
  },
  queues(snap) {
    const rows = snap.queues.map(q => el("tr", { "data-queue": q.name },
      td(q.name), td(q.depth, "num depth"), td(rate(q.in_rate), "num"), td(rate(q.out_rate), "num"),
      td(secs(q.oldest_age), "num"), td(q.leased, "num"), td(q.scheduled, "num"),
      td(q.dead, "num")));
    return [el("h2", { text: "Queues" }),
      table(["queue", "depth", "in", "out", "oldest", "leased", "scheduled", "dead"], rows, "queues")];
  },
  charts() {
    const box = [];
    for (const [id, title] of [["throughput", "Throughput (tasks/s, last 15 min)"],
                               ["depths", "Queue depths"], ["runtime", "Runtime p50 / p95 (s)"]]) {
      box.push(el("div", { class: "chart" }, el("h2", { text: title }),
        el("canvas", { id: "chart-" + id }), el("div", { class: "legend", id: "legend-" + id })));
    }
    return box;
  },
  tasks() {
    const input = el("input", { id: "task-search", placeholder: "id or name", type: "search" });
    const state = el("select", { id: "task-state" }, el("option", { value: "", text: "any state" }),
      ...["PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"].map(s => el("option", { value: s, text: s })));
    input.addEventListener("input", () => refreshTasks());
    state.addEventListener("change", () => refreshTasks());
    return [el("div", { class: "search" }, input, state), el("div", { id: "task-list" })];
  },
  task() {
    return [el("h2", { text: `Task ${TASK}` }), el("div", { id: "task-detail" })];
  },
  dead(snap) {
    const rows = snap.dead.map(d => el("tr", { "data-mid": d.mid },
      td(when(d.at)), td(d.queue), td(d.reason), el("td", {}, el("pre", { text: d.body })),
      el("td", {},
        el("button", { class: "retry", onclick: () => act(`/api/dead/${encodeURIComponent(d.queue)}/${encodeURIComponent(d.mid)}/retry`) }, "retry"),
        " ",
        el("button", { class: "danger discard", onclick: () => confirm("Discard this message for good?") &&
          act(`/api/dead/${encodeURIComponent(d.queue)}/${encodeURIComponent(d.mid)}/discard`) }, "discard"))));
    return [el("h2", { text: `Dead letters (${snap.dead.length})` }),
      table(["when", "queue", "reason", "body", "actions"], rows, "dead")];
  },
  scheduled(snap) {
    const eta = snap.scheduled.map(s => el("tr", {}, td(when(s.eta)), td(dash(s.task)),
      td(dash(s.id)), td(s.queue)));
    const periodic = snap.periodic.map(p => el("tr", {}, td(p.name), td(p.task), td(p.schedule),
      td(when(p.last)), td(when(p.next))));
    return [el("h2", { text: "Scheduled (eta / countdown)" }),
      table(["eta", "task", "id", "queue"], eta, "scheduled"),
      el("h2", { text: "Periodic entries" }),
      table(["entry", "task", "schedule", "last run", "next run"], periodic, "periodic")];
  },
};

// -- charts (hand-drawn on canvas) -------------------------------------------------------
function drawChart(id, series) {
  const canvas = document.getElementById("chart-" + id);
  if (!canvas) return;
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, w, h);
  const now = Date.now() / 1000, span = 15 * 60, left = 44, bottom = h - 18;
  let max = 0;
  for (const s of series) for (const [, v] of s.points) if (v !== null && v > max) max = v;
  max = max > 0 ? max * 1.1 : 1;
  ctx.strokeStyle = "#dde1e8"; ctx.fillStyle = "#687083"; ctx.font = "11px system-ui";
  for (let i = 0; i <= 4; i++) {
    const y = bottom - (bottom - 6) * i / 4;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText((max * i / 4).toPrecision(3), 2, y + 4);
  }
  for (const m of [15, 10, 5, 0]) {
    const x = left + (w - left) * (1 - m * 60 / span);
    ctx.fillText(m ? `-${m}m` : "now", Math.min(x - 10, w - 26), h - 4);
  }
  const legend = document.getElementById("legend-" + id);
  legend.textContent = "";
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const swatch = el("i", {}); swatch.style.background = color;
    legend.append(el("span", {}, swatch, s.name));
    ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
    let started = false;
    for (const [t, v] of s.points) {
      if (v === null || t < now - span) { started = false; continue; }
      const x = left + (w - left) * (1 - (now - t) / span), y = bottom - (bottom - 6) * v / max;
      if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
    }
    ctx.stroke();
  });
}

function drawCharts() {
  const pts = key => history.map(p => [p.t, p[key]]);
  drawChart("throughput", [{ name: "succeeded/s", points: pts("succeeded") },
                           { name: "failed/s", points: pts("failed") }]);
  const names = new Set();
  for (const p of history) for (const q of Object.keys(p.depth || {})) names.add(q);
  drawChart("depths", [...names].sort().map(q => ({ name: q,
    points: history.map(p => [p.t, (p.depth || {})[q] ?? null]) })));
  drawChart("runtime", [{ name: "p50", points: pts("p50") }, { name: "p95", points: pts("p95") }]);
}

// -- tasks -------------------------------------------------------------------------------
let tasksPending = false;
async function refreshTasks() {
  if (tasksPending) return;
  tasksPending = true;
  try {
    const q = document.getElementById("task-search").value;
    const state = document.getElementById("task-state").value;
    const resp = await fetch(`/api/tasks?limit=100&q=${encodeURIComponent(q)}&state=${state}`);
    const rows = (await resp.json()).map(t => el("tr", { "data-task": t.id },
      el("td", {}, el("a", { href: `/tasks/${encodeURIComponent(t.id)}`, text: t.id })),
      td(dash(t.name)), td(t.state, "state-" + t.state), td(dash(t.node)), td(when(t.updated)),
      td(t.runtime === null ? "-" : t.runtime.toFixed(3), "num"), td(t.retries, "num"),
      td(dash(t.args))));
    const list = document.getElementById("task-list");
    list.replaceChildren(table(["id", "name", "state", "node", "updated", "runtime", "retries",
                                "args"], rows, "tasks"));
  } finally { tasksPending = false; }
}

async function refreshTask() {
  const resp = await fetch(`/api/tasks/${encodeURIComponent(TASK)}`);
  const doc = await resp.json();
  const box = document.getElementById("task-detail");
  if (!resp.ok) { box.replaceChildren(el("p", { text: doc.error })); return; }
  const t = doc.task || {}, r = doc.result || {};
  const link = id => el("a", { href: `/tasks/${encodeURIComponent(id)}`, text: id });
  const pairs = [["state", r.status || t.state], ["name", r.name || t.name],
    ["node", r.worker || r.node || t.node], ["queue", r.queue || t.queue],
    ["args", JSON.stringify(r.args ?? null)], ["kwargs", JSON.stringify(r.kwargs ?? null)],
    ["result", r.status === "SUCCESS" ? JSON.stringify(r.result) : null],
    ["traceback", r.traceback || t.exception], ["runtime", t.runtime],
    ["retries", r.retries ?? t.retries], ["done", when(r.date_done)],
    ["parent", r.parent_id || t.parent_id ? link(r.parent_id || t.parent_id) : null],
    ["children", (t.children || []).length ? el("span", {}, ...t.children.flatMap(c => [link(c), " "])) : null]];
  const dl = el("dl", { class: "detail" });
  for (const [k, v] of pairs) dl.append(el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : el("pre", { text: dash(v) })));
  const buttons = el("p", {},
    el("button", { class: "revoke", onclick: () => act(`/api/tasks/${encodeURIComponent(TASK)}/revoke`, { terminate: false }) }, "revoke"),
    " ",
    el("button", { class: "danger terminate", onclick: () => confirm("Revoke and terminate the running task?") &&
      act(`/api/tasks/${encodeURIComponent(TASK)}/revoke`, { terminate: true }) }, "revoke + terminate"));
  box.replaceChildren(dl, buttons);
}

// -- the loop ----------------------------------------------------------------------------
function update(snap) {
  lastSnap = snap;
  for (const [k, v] of Object.entries(snap.totals || {})) {
    const node = document.getElementById("count-" + k);
    if (node) node.textContent = v;
  }
  document.getElementById("count-nodes").textContent =
    (snap.nodes || []).filter(n => n.state !== "offline").length;
  const b = snap.broker || {};
  document.getElementById("broker").textContent = b.error ? `broker ${b.url}: ${b.error}` : `broker ${b.url}`;
  if (snap.history && (!history.length || history[history.length - 1].t < snap.history.t)) {
    history.push(snap.history);
    while (history.length && history[0].t < Date.now() / 1000 - 15 * 60) history.shift();
  }
  const main = document.getElementById("main");
  if (PAGE === "charts") { if (!main.firstChild) main.replaceChildren(...render.charts()); drawCharts(); }
  else if (PAGE === "tasks") { if (!main.firstChild) main.replaceChildren(...render.tasks()); refreshTasks(); }
  else if (PAGE === "task") { if (!main.firstChild) { main.replaceChildren(...render.task()); refreshTask(); } }
  else if (render[PAGE]) main.replaceChildren(...render[PAGE](snap));
  document.body.dataset.version = snap.version;
}

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/stream");
  source.addEventListener("snapshot", ev => update(JSON.parse(ev.data)));
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
}

async function boot() {
  const current = document.getElementById("nav-" + (PAGE === "task" ? "tasks" : PAGE));
  if (current) current.className = "current";
  if (PAGE === "charts") history = await (await fetch("/api/history")).json();
  update(await (await fetch("/api/snapshot")).json());
  connect();
  window.addEventListener("resize", () => PAGE === "charts" && drawCharts());
}
boot();
