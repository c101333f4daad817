// The foxlake dashboard: REST for the panels, /ws/events and /ws/training for what happens now.
// Panels refresh when the engine reports a finished cycle (event cycle_complete) and every few seconds.
"use strict";

const $ = (id) => document.getElementById(id);
const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x)) ? "—"
  : Number(x).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const pct = (x, d = 2) => (x === null || x === undefined) ? "—" : `${(100 * x).toFixed(d)}%`;
const cls = (x) => x > 0 ? "pos" : x < 0 ? "neg" : "";
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const shortTs = (ts) => ts ? ts.replace("T", " ").slice(0, 19) : "—";

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json().catch(() => ({}))).detail || ""}`);
  return r.json();
}

// --- header -----------------------------------------------------------------------------------------------------
async function refreshState() {
  try {
    const s = await getJSON("/api/state");
    $("status").textContent = s.status; $("status").className = `badge ${s.status}`;
    $("stage").textContent = s.current_stage;
    $("cycles").textContent = s.cycle_count;
    $("last-cycle").textContent = shortTs(s.last_cycle);
  } catch (e) { $("status").textContent = "unreadable"; $("status").className = "badge error"; }
}

// --- equity ---------------------------------------------------------------------------------------------------------
let chart = null;
async function refreshEquity() {
  let h;
  try { h = await getJSON("/api/equity?max_points=3000"); } catch (e) { return; }
  $("account").textContent = `account ${h.account}`;
  const pts = h.points;
  if (!pts.length) return;
  const last = pts[pts.length - 1];
  $("equity-value").textContent = fmt(last.equity);
  const pnl = last.equity - h.initial_cash;
  $("pnl-value").innerHTML = `<span class="${cls(pnl)}">${fmt(pnl)} (${pct(pnl / h.initial_cash, 3)})</span>`;
  const data = [pts.map((p) => Date.parse(p.ts) / 1000), pts.map((p) => p.equity), pts.map((p) => -100 * p.drawdown_frac)];
  const el = $("equity-chart");
  const width = Math.max(300, el.clientWidth || 800);
  if (!chart) {
    chart = new uPlot({
      width, height: 240,
      series: [
        { value: (u, v) => v === null ? "—" : new Date(v * 1000).toISOString().slice(0, 16).replace("T", " ") },
        { label: "equity", stroke: "#58a6ff", width: 1.5, scale: "eq", value: (u, v) => fmt(v) },
        { label: "drawdown %", stroke: "#f85149", fill: "rgba(248,81,73,.15)", width: 1, scale: "dd", value: (u, v) => v === null ? "—" : v.toFixed(3) },
      ],
      axes: [
        { stroke: "#7d8a97", grid: { stroke: "#27313c" } },
        { scale: "eq", stroke: "#7d8a97", grid: { stroke: "#27313c" }, size: 80, values: (u, vs) => vs.map((v) => fmt(v, 0)) },
        { scale: "dd", side: 1, stroke: "#f85149", grid: { show: false }, values: (u, vs) => vs.map((v) => `${v.toFixed(2)}%`) },
      ],
      scales: { x: { time: true }, dd: { range: (u, min) => [Math.min(min, -0.01) * 1.1, 0] } },
    }, data, el);
  } else {
    chart.setData(data);
  }
}
window.addEventListener("resize", () => { if (chart) chart.setSize({ width: $("equity-chart").clientWidth, height: 240 }); });

// --- risk -----------------------------------------------------------------------------------------------------------
function gauge(id, used, text) {
  const bar = $(id);
  const w = Math.max(0, Math.min(1, used));
  bar.style.width = `${(100 * w).toFixed(1)}%`;
  bar.className = used >= 0.75 ? "crit" : used >= 0.5 ? "warn" : "";
  $(`${id}-t`).textContent = text;
}
async function refreshRisk() {
  let r;
  try { r = await getJSON("/api/risk/status"); } catch (e) { return; }
  const loss = Math.max(0, -r.daily_pnl_pct);
  gauge("g-daily", loss / r.daily_loss_limit_pct, `${pct(-r.daily_pnl_pct, 3)} of −${pct(r.daily_loss_limit_pct, 1)}`);
  gauge("g-dd", r.drawdown_pct / r.max_drawdown_limit_pct, `${pct(r.drawdown_pct, 3)} of ${pct(r.max_drawdown_limit_pct, 1)}`);
  gauge("g-gross", r.gross_exposure / r.max_gross_exposure, `${r.gross_exposure.toFixed(3)} of ${r.max_gross_exposure}`);
  $("net-exposure").textContent = r.net_exposure.toFixed(3);
  const ks = $("kill-switch");
  ks.className = `kill ${r.kill_switch_active ? "on" : "off"}`;
  ks.textContent = r.kill_switch_active ? `KILL SWITCH ON: ${r.kill_switch_reason}` : "kill switch off";
  $("risk-warnings").innerHTML = r.warnings.map((w) => `<li class="${esc(w.severity)}">${esc(w.message)}</li>`).join("");
  $("risk-checked").textContent = `after bar ${shortTs(r.last_check)}`;
}

// --- positions ------------------------------------------------------------------------------------------------------
async function refreshPositions() {
  let p;
  try { p = await getJSON("/api/positions"); } catch (e) { return; }
  $("positions-count").textContent = p.total_positions;
  $("positions-ls").textContent = `${p.long_count} long, ${p.short_count} short, net value ${fmt(p.total_market_value)}`;
  $("positions").tBodies[0].innerHTML = p.positions.map((x) => `<tr>
    <td>${esc(x.symbol)}</td><td class="${x.side === "long" ? "pos" : "neg"}">${x.side}</td>
    <td class="n">${x.shares}</td><td class="n">${fmt(x.entry_price)}</td><td class="n">${fmt(x.current_price)}</td>
    <td class="n">${fmt(x.market_value)}</td><td class="n ${cls(x.unrealized_pnl)}">${fmt(x.unrealized_pnl)} (${pct(x.unrealized_pnl_pct)})</td>
    <td class="n">${pct(x.weight)}</td></tr>`).join("");
}

// --- models, runs, decisions, orders --------------------------------------------------------------------------------
async function refreshModels() {
  let ms;
  try { ms = await getJSON("/api/models"); } catch (e) { return; }
  $("models-policy").textContent = ms.length ? ms[0].policy : "";
  $("models").tBodies[0].innerHTML = ms.map((m) => `<tr title="${esc(m.model_dir)}">
    <td>${esc(m.target)}</td><td>${esc(m.view)}</td><td>${esc(m.family)}</td>
    <td class="n">${fmt(m.holdout_ic, 4)}</td><td class="n ${cls(m.realised_ic)}">${fmt(m.realised_ic, 4)}</td>
    <td class="n">${m.realised_cycles}</td><td>${m.quarantined ? `<span class="neg" title="${esc(m.quarantine_reason)}">quarantined</span>` : "trading"}</td></tr>`).join("");
}
async function refreshRuns() {
  let rs;
  try { rs = await getJSON("/api/training/runs?limit=8"); } catch (e) { return; }
  $("runs").tBodies[0].innerHTML = rs.map((r) => `<tr title="${esc(r.run_dir)}"><td>${esc(r.run_id)}/${esc(r.run_instance_id)}</td>
    <td>${shortTs(r.timestamp)}</td><td class="n">${r.n_models}</td><td class="n">${fmt(r.best_holdout_ic, 4)}</td></tr>`).join("");
}
async function refreshDecisions() {
  let d;
  try { d = await getJSON("/api/decisions"); } catch (e) { return; }
  const c = d.cycle;
  $("decisions-cycle").textContent = `cycle ${c.cycle_id} at ${shortTs(c.ts)}: ${c.n_trade} trade, ${c.n_hold} hold, ${c.n_blocked} blocked, ${c.latency_ms.toFixed(1)} ms${c.in_sample ? " — IN-SAMPLE" : ""}`;
  $("trading-state").textContent = c.trading_state + (c.paused ? " (paused)" : "");
  $("trading-state").className = `badge ${c.paused ? "paused" : c.trading_state}`;
  const order = { TRADE: 0, BLOCKED: 1, HOLD: 2 };
  const rows = d.decisions.slice().sort((a, b) => order[a.action] - order[b.action] || Math.abs(b.alpha_bps || 0) - Math.abs(a.alpha_bps || 0));
  $("decisions").tBodies[0].innerHTML = rows.map((x) => `<tr title="${esc(JSON.stringify(x.trace))}">
    <td>${esc(x.symbol)}</td><td>${x.action}</td><td>${esc(x.reason)}</td><td class="n ${cls(x.alpha_bps)}">${fmt(x.alpha_bps, 2)}</td>
    <td class="n">${fmt(x.cost_bps, 2)}</td><td class="n">${pct(x.current_weight_frac)} → ${pct(x.target_weight_frac)}</td>
    <td class="n">${x.order_qty || ""}</td></tr>`).join("");
}
async function refreshOrders() {
  try {
    const [os, fs] = await Promise.all([getJSON("/api/orders?limit=60"), getJSON("/api/fills?limit=60")]);
    $("orders").tBodies[0].innerHTML = os.map((o) => `<tr><td>${o.cycle_id}</td><td>${esc(o.symbol)}</td>
      <td class="n ${cls(o.qty)}">${o.qty}</td><td class="n">${o.filled_qty}</td><td>${o.status}${o.reduce_only ? " (reduce)" : ""}</td></tr>`).join("");
    $("fills").tBodies[0].innerHTML = fs.map((f) => `<tr><td>${shortTs(f.ts)}</td><td>${esc(f.symbol)}</td>
      <td class="n ${cls(f.qty)}">${f.qty}</td><td class="n">${fmt(f.price)}</td><td class="n">${fmt(f.fee, 4)}</td></tr>`).join("");
  } catch (e) { /* no ledger yet */ }
}

let refreshing = false, again = false;
async function refreshAll() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    await Promise.all([refreshState(), refreshEquity(), refreshRisk(), refreshPositions(), refreshModels(),
      refreshDecisions(), refreshOrders()]);
  } finally {
    refreshing = false;
    if (again) { again = false; refreshAll(); }
  }
}

// --- websockets -----------------------------------------------------------------------------------------------------
function wsUrl(path) { return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`; }

let lastEventId = null, eventsSeen = 0;
function connectEvents() {
  const ws = new WebSocket(wsUrl(`/ws/events${lastEventId === null ? "?recent=100" : `?after=${lastEventId}`}`));
  ws.onopen = () => { $("ws-status").textContent = "live"; $("ws-status").className = "badge live"; };
  ws.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    lastEventId = ev.event_id;
    eventsSeen += 1;
    $("events-count").textContent = eventsSeen;
    const li = document.createElement("li");
    li.className = ev.severity;
    li.innerHTML = `<span class="t">${shortTs(ev.timestamp).slice(11)}</span><span class="ty">${esc(ev.event_type)}</span> ${esc(ev.message)}`;
    const list = $("events");
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 300) list.removeChild(list.lastChild);
    if (ev.event_type === "cycle_complete" || ev.event_type === "command") refreshAll();
  };
  ws.onclose = () => {
    $("ws-status").textContent = "reconnecting"; $("ws-status").className = "badge reconnecting";
    setTimeout(connectEvents, 1000);
  };
}

let lastTrainingSeq = null;
function connectTraining() {
  const ws = new WebSocket(wsUrl(`/ws/training${lastTrainingSeq === null ? "" : `?after=${lastTrainingSeq}`}`));
  ws.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    lastTrainingSeq = ev.seq;
    $("training-run").textContent = `${ev.run_id} ${ev.run_instance_id || ""}`;
    if (ev.progress_pct !== undefined) $("training-bar").style.width = `${ev.progress_pct.toFixed(1)}%`;
    const when = shortTs(ev.timestamp);
    if (ev.event_type === "run_complete") {
      $("training-bar").style.width = "100%";
      $("training-text").textContent = `run complete at ${when}`;
      refreshRuns();
    } else if (ev.event_type === "error") {
      $("training-text").innerHTML = `<span class="neg">error in ${esc(ev.stage)}: ${esc(ev.message)}</span>`;
    } else if (ev.event_type === "target_complete") {
      $("training-text").textContent = `${ev.target}: ${ev.status}, ${ev.models_trained} models (${when})`;
    } else {
      const n = ev.targets_total !== undefined ? ` ${ev.targets_complete}/${ev.targets_total}` : "";
      $("training-text").textContent = `${ev.stage}${n} ${ev.current_target ? "· " + ev.current_target : ""} · ${ev.progress_pct?.toFixed(0) ?? "?"}% (${when})`;
    }
  };
  ws.onclose = () => setTimeout(connectTraining, 2000);
}

// --- controls -------------------------------------------------------------------------------------------------------
$("token-input").value = sessionStorage.getItem("foxlake-token") || "";
for (const btn of document.querySelectorAll(".controls button")) {
  btn.addEventListener("click", async () => {
    const command = btn.dataset.command;
    const token = $("token-input").value.trim();
    if (!token) { $("control-result").textContent = "enter the bridge token first (printed by foxlake bridge serve)"; return; }
    sessionStorage.setItem("foxlake-token", token);
    let reason = `${command} from the dashboard`;
    if (command === "kill") {
      const given = window.prompt("Kill switch: why? (kept in the ledger)");
      if (!given) return;
      reason = given;
    }
    $("control-result").textContent = `${command}: sent, waiting for the engine…`;
    const r = await fetch(`/api/control/${command}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ reason, wait_s: 10 }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) { $("control-result").textContent = `${command}: ${r.status} ${body.detail || ""}`; return; }
    $("control-result").textContent = body.acknowledged
      ? `${command}: applied at cycle ${body.applied_cycle}: ${body.result}`
      : `${command}: queued as command ${body.command_id}; the engine applies it at its next cycle`;
    refreshAll();
  });
}

refreshAll();
refreshRuns();
connectEvents();
connectTraining();
setInterval(refreshState, 2000);
setInterval(refreshAll, 10000);
