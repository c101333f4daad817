"""The tearsheet of an account, from its ledger alone (live realised figures; the holdout IC each model was picked
on is shown beside its realised IC, never mixed into it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from live.ledger.reader import LedgerReader
from ml.synthetic import SESSION_MINUTES

TRADING_DAYS_PER_YEAR = 252


def bars_per_year(interval_minutes: float) -> float:
    """Bars in a trading year: intraday bars fill a 390-minute session; daily bars are one a day."""
    per_day = SESSION_MINUTES / interval_minutes if interval_minutes < 1440 else 1.0
    return TRADING_DAYS_PER_YEAR * per_day


def report(results: str | Path, account: str, interval_minutes: float) -> dict[str, Any]:
    """Net P&L, annualised Sharpe, max drawdown, turnover, hit rate, fees, realised IC per target and model."""
    with LedgerReader(results, account) as led:
        if led.one("select count(*) as n from cycles")["n"] == 0:
            return {"account": account, "cycles": 0}
        initial = json.loads(led.meta()["config"])["broker"]["initial_cash"]
        eq = led.frame(
            "select cycle_id, ts, cash, market_value, equity, gross_frac, net_frac, fees_cum from equity "
            "order by cycle_id"
        )
        cycles = led.frame(
            "select cycle_id, in_sample, trading_state, n_trade, n_hold, n_blocked, latency_ms from cycles"
        )
        fills = led.frame("select qty, price, fee from fills")
        longs_shorts = led.one(
            "select max(n_long) as max_long, max(n_short) as max_short from (select cycle_id, "
            "sum(target_weight_frac > 0) as n_long, sum(target_weight_frac < 0) as n_short from decisions "
            "where action != 'BLOCKED' group by cycle_id)"
        )
        ic = led.frame(
            "select r.target, r.model, avg(r.ic) as realised_ic, count(r.ic) as cycles, m.holdout_ic "
            "from realised_ic r left join models m on m.model = r.model group by r.target, r.model, m.holdout_ic "
            "order by r.target, r.model"
        )
        states = led.frame("select trading_state, count(*) as cycles from cycles group by 1 order by 1")
        events = led.one(
            "select count(*) as n, sum(severity in ('error', 'critical')) as errors from events "
            "where event_type != 'cycle_complete'"
        )
    equity = np.concatenate([[initial], eq["equity"].to_numpy()])
    rets = np.diff(equity) / equity[:-1]
    sd = rets.std(ddof=1) if len(rets) > 1 else 0.0
    peak = np.maximum.accumulate(equity)
    notional = float(np.abs(fills["qty"].to_numpy() * fills["price"].to_numpy()).sum()) if fills.height else 0.0
    in_sample = int(cycles["in_sample"].sum())
    return {
        "account": account,
        "measured_on": "live realised (paper broker), in-sample cycles: " + str(in_sample),
        "first_ts": eq["ts"][0],
        "last_ts": eq["ts"][-1],
        "cycles": eq.height,
        "in_sample_cycles": in_sample,
        "initial_equity": initial,
        "final_equity": float(equity[-1]),
        "net_pnl": float(equity[-1] - initial),
        "net_return_frac": float(equity[-1] / initial - 1),
        "sharpe_annualised": float(rets.mean() / sd * math.sqrt(bars_per_year(interval_minutes))) if sd > 0 else None,
        "max_drawdown_frac": float((1 - equity / peak).max()),
        "turnover_frac_per_bar": notional / float(np.mean(equity)) / 2 / eq.height,
        "hit_rate": float((rets > 0).sum() / max(1, (rets != 0).sum())),
        "hit_rate_means": "share of cycles with a non-zero P&L whose P&L was positive",
        "fees_paid": float(fills["fee"].sum()) if fills.height else 0.0,
        "fills": fills.height,
        "max_long_positions": longs_shorts["max_long"] if longs_shorts else 0,
        "max_short_positions": longs_shorts["max_short"] if longs_shorts else 0,
        "decisions": {
            "TRADE": int(cycles["n_trade"].sum()),
            "HOLD": int(cycles["n_hold"].sum()),
            "BLOCKED": int(cycles["n_blocked"].sum()),
        },
        "trading_states": dict(zip(states["trading_state"].to_list(), states["cycles"].to_list(), strict=True)),
        "latency_ms_p50": float(np.median(cycles["latency_ms"].to_numpy())),
        "latency_ms_p99": float(np.percentile(cycles["latency_ms"].to_numpy(), 99)),
        "events": events["n"] if events else 0,
        "error_events": (events["errors"] or 0) if events else 0,
        "realised_ic": ic.to_dicts(),
    }


def format_report(rep: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    if not rep.get("cycles"):
        return f"account {rep['account']}: no cycles yet"
    lines = [
        f"account {rep['account']}: {rep['cycles']} cycles {rep['first_ts']} .. {rep['last_ts']} "
        f"({rep['measured_on']})",
        f"  net P&L {rep['net_pnl']:,.2f} ({rep['net_return_frac']:+.4%}) after fees {rep['fees_paid']:,.2f}; "
        f"equity {rep['final_equity']:,.2f}",
        f"  Sharpe (annualised) {_f(rep['sharpe_annualised'])}, max drawdown {rep['max_drawdown_frac']:.3%}, "
        f"turnover {rep['turnover_frac_per_bar']:.3f} per bar one way, hit rate {rep['hit_rate']:.1%} "
        f"({rep['hit_rate_means']})",
        f"  {rep['fills']} fills; at most {rep['max_long_positions']} long and {rep['max_short_positions']} short "
        f"targets in a cycle; decisions {rep['decisions']}; states {rep['trading_states']}",
        f"  cycle latency p50 {rep['latency_ms_p50']:.1f} ms, p99 {rep['latency_ms_p99']:.1f} ms; "
        f"{rep['events']} events besides the cycle summaries ({rep['error_events']} errors)",
        "  realised IC (per-timestamp Pearson over the traded bars) beside the holdout IC the model was picked on:",
    ]
    for r in rep["realised_ic"]:
        lines.append(
            f"    {r['model']:<60} realised {_f(r['realised_ic'])} over {r['cycles']} bars   "
            f"holdout {_f(r['holdout_ic'])}"
        )
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.4f}"
