"""``foxlake live report --html FILE``: the dashboard's charts and tables for one account as a single static page
(no server: the data, uPlot and the styles are inlined), for a replay that ran without a bridge."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from bridge import ledger_views
from contracts.io import write_atomic_bytes
from live.ledger.reader import LedgerReader

STATIC = Path(__file__).parent / "static"

_SCRIPT = """
const D = JSON.parse(document.getElementById("data").textContent);
const pts = D.equity.points;
new uPlot({width: Math.max(600, document.getElementById("chart").clientWidth), height: 260,
  series: [{}, {label: "equity", stroke: "#58a6ff", scale: "eq"},
           {label: "drawdown %", stroke: "#f85149", fill: "rgba(248,81,73,.15)", scale: "dd"}],
  axes: [{stroke: "#7d8a97", grid: {stroke: "#27313c"}},
         {scale: "eq", stroke: "#7d8a97", size: 80, grid: {stroke: "#27313c"}},
         {scale: "dd", side: 1, stroke: "#f85149", grid: {show: false}}],
  scales: {x: {time: true}}},
  [pts.map(p => Date.parse(p.ts) / 1000), pts.map(p => p.equity), pts.map(p => -100 * p.drawdown_frac)],
  document.getElementById("chart"));
"""


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def write_html_report(results: str | Path, account: str, path: str | Path, summary: dict[str, Any]) -> Path:
    """Write the page to ``path`` (``summary``: ``live.report.report``'s figures, printed at the top)."""
    with LedgerReader(results, account) as led:
        equity = ledger_views.equity_history(led, account, max_points=5000)
        positions = ledger_views.positions(led)
        models = ledger_views.models_in_use(led)
        risk = ledger_views.risk_status(led)
    data = json.dumps({"equity": equity.model_dump()}).replace("</", "<\\/")
    facts = [
        ["measured on", summary.get("measured_on", "")],
        ["bars", f"{summary.get('first_ts')} .. {summary.get('last_ts')} ({summary.get('cycles')} cycles)"],
        ["net P&L", _num(summary.get("net_pnl"), 2)],
        ["net return", f"{100 * summary.get('net_return_frac', 0.0):+.4f}%"],
        ["Sharpe (annualised)", _num(summary.get("sharpe_annualised"), 3)],
        ["max drawdown", _num(summary.get("max_drawdown_frac"), 5)],
        ["fees", _num(summary.get("fees_paid"), 2)],
        ["fills", summary.get("fills")],
        ["kill switch", risk.kill_switch_reason or "off"],
    ]
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>foxlake — {
        html.escape(account)
    }</title>
<style>{(STATIC / "vendor" / "uPlot.min.css").read_text()}</style>
<style>{(STATIC / "dashboard.css").read_text()} .wrap td {{ white-space: normal; }}</style></head><body>
<header><div class="brand">foxlake <span class="muted">account {
        html.escape(account)
    } · static report</span></div></header>
<main>
<section class="panel span-4 wrap"><h2>Summary</h2>{_table(["", ""], facts)}</section>
<section class="panel span-8"><h2>Equity and drawdown <span class="muted">live realised, paper broker</span></h2>
<div id="chart"></div></section>
<section class="panel wide"><h2>Positions at the end <span class="muted">{positions.total_positions} open</span></h2>
{
        _table(
            ["symbol", "side", "shares", "entry", "last", "value", "unreal. P&L", "weight"],
            [
                [
                    p.symbol,
                    p.side,
                    p.shares,
                    _num(p.entry_price, 2),
                    _num(p.current_price, 2),
                    _num(p.market_value, 2),
                    _num(p.unrealized_pnl, 2),
                    f"{100 * p.weight:.2f}%",
                ]
                for p in positions.positions
            ],
        )
    }</section>
<section class="panel wide"><h2>Models <span class="muted">holdout IC (picked on) · realised IC (live)</span></h2>
{
        _table(
            ["target", "view", "family", "holdout IC", "realised IC", "bars", "state"],
            [
                [
                    m.target,
                    m.view,
                    m.family,
                    _num(m.holdout_ic),
                    _num(m.realised_ic),
                    m.realised_cycles,
                    "quarantined" if m.quarantined else "trading",
                ]
                for m in models
            ],
        )
    }</section>
</main>
<script type="application/json" id="data">{data}</script>
<script>{(STATIC / "vendor" / "uPlot.iife.min.js").read_text()}</script>
<script>{_SCRIPT}</script></body></html>
"""  # noqa: E501
    return write_atomic_bytes(path, body.encode("utf-8"))
