"""Routing: which view(s) each target is trained in, by a fixed, documented rule order.

Every number comes from the walk-forward CV on the development data (:mod:`ml.ranking`); the holdout is never
read here. Thresholds are :class:`ml.config.RoutingThresholds`. Rules, first match wins:

1. ``suspicious`` — the pooled view's ``|IC|`` exceeds ``max_abs_ic_cs`` → BLOCKED, whatever its t-stat (a
   large t makes a leak more certain, never less).
2. ``no_skill`` — CS shows no skill (IC or t below the minimum) and fewer than ``frac_some`` of the symbols (or
   none) are good → BLOCKED.
3. ``not_tradable`` — CS shows skill but its net spread after costs is below ``min_net_spread_bps``, and fewer
   than ``frac_some`` of the symbols (or none) are good → BLOCKED.
4. ``too_many_symbols`` — CS good, at least ``frac_some`` of symbols good, but more good symbols than
   ``max_symbols_symbol_specific`` → CROSS_SECTIONAL.
5. ``cs_and_most_symbols`` — CS good and at least ``frac_most`` of symbols good → CROSS_SECTIONAL.
6. ``cs_only`` — CS good and fewer than ``frac_some`` of symbols good → CROSS_SECTIONAL.
7. ``symbols_only`` — CS not good, at least ``frac_some`` of symbols good → SYMBOL_SPECIFIC (or BLOCKED with rule
   ``too_many_symbols`` when more good symbols than the cap).
8. ``cs_and_some_symbols`` — CS good, between ``frac_some`` and ``frac_most`` of symbols good → BOTH.

CS good: mean per-timestamp IC >= ``cs_ic_min``, t >= ``cs_t_min`` and net spread >= ``min_net_spread_bps``. A
symbol is good: its own model's time-series IC >= ``symbol_ic_min``, t >= ``symbol_t_min``, net spread >=
``min_net_spread_bps``, and it is not suspicious (``|ts_IC| > max_abs_ic_symbol``: such symbols are named in the
reason and never count as good, nor are they ever traded).
"""

from __future__ import annotations

from typing import Any

from ml.config import RoutingThresholds
from ml.metrics import skill01
from ml.ranking import TargetEvaluation


def _net(m: dict[str, Any]) -> float:
    value = m.get("net_spread_bps")
    if value is None:
        raise KeyError("net_spread_bps: the evaluation has no cost metrics (ml.metrics) to route by")
    return float(value)


def route_target(ev: TargetEvaluation, th: RoutingThresholds) -> dict[str, Any]:
    """The routing decision document for one target (contract: routing_decision.json)."""
    ic, t, net = ev.cs["mean_IC"], ev.cs["t_stat"], _net(ev.cs)
    cs_skill = ic >= th.cs_ic_min and t >= th.cs_t_min
    cs_good = cs_skill and net >= th.min_net_spread_bps
    suspicious_symbols = sorted(s for s, m in ev.symbols.items() if abs(m["ts_IC"]) > th.max_abs_ic_symbol)
    good = sorted(
        (
            s
            for s, m in ev.symbols.items()
            if m["ts_IC"] >= th.symbol_ic_min
            and m["t_stat"] >= th.symbol_t_min
            and _net(m) >= th.min_net_spread_bps
            and s not in suspicious_symbols
        ),
        key=lambda s: -ev.symbols[s]["ts_IC"],
    )
    n_sym = len(ev.symbols)
    frac = len(good) / n_sym if n_sym else 0.0
    s01 = ev.skill01_cs
    cost = ev.cs.get("cost_bps")
    nums = (
        f"IC_cs={ic:.4f} (min {th.cs_ic_min}), t_cs={t:.2f} (min {th.cs_t_min}), "
        f"net_spread_cs={net:.2f} bps at cost {cost} bps (min {th.min_net_spread_bps}), "
        f"good symbols {len(good)}/{n_sym} = {frac:.2f} (some >= {th.frac_some}, most >= {th.frac_most})"
    )
    if suspicious_symbols:
        worst = max(suspicious_symbols, key=lambda s: abs(ev.symbols[s]["ts_IC"]))
        nums += (
            f"; suspicious symbols excluded {suspicious_symbols} (|ts_IC| > {th.max_abs_ic_symbol}, "
            f"{worst}: {ev.symbols[worst]['ts_IC']:.3f})"
        )
    few_symbols = frac < th.frac_some or not good
    if abs(ic) > th.max_abs_ic_cs:
        rule, route = "suspicious", "BLOCKED"
        nums = (
            f"|IC_cs|={abs(ic):.4f} > max_abs_ic_cs {th.max_abs_ic_cs} (t_cs={t:.1f}): no real return signal "
            "is that strong; look for a feature that reads the target"
        )
    elif not cs_skill and few_symbols:
        rule, route = "no_skill", "BLOCKED"
    elif not cs_good and few_symbols:
        rule, route = "not_tradable", "BLOCKED"
    elif cs_good and frac >= th.frac_some and len(good) > th.max_symbols_symbol_specific:
        rule, route = "too_many_symbols", "CROSS_SECTIONAL"
        nums += f"; {len(good)} good symbols > cap {th.max_symbols_symbol_specific}"
    elif cs_good and frac >= th.frac_most:
        rule, route = "cs_and_most_symbols", "CROSS_SECTIONAL"
    elif cs_good and few_symbols:
        rule, route = "cs_only", "CROSS_SECTIONAL"
    elif not cs_good:
        if len(good) > th.max_symbols_symbol_specific:
            rule, route = "too_many_symbols", "BLOCKED"
            nums += f"; {len(good)} good symbols > cap {th.max_symbols_symbol_specific} and CS not good"
        else:
            rule, route = "symbols_only", "SYMBOL_SPECIFIC"
    else:
        rule, route = "cs_and_some_symbols", "BOTH"
    sym_ics = [m["ts_IC"] for m in ev.symbols.values()]
    return {
        "route": route,
        "reason": f"rule {rule}: {nums}",
        "rule": rule,
        "skill01_cs": s01,
        "skill01_sym_mean": sum(skill01(x) for x in sym_ics) / len(sym_ics) if sym_ics else None,
        "frac_symbols_good": frac,
        "winner_symbols": good,
        "suspicious_symbols": suspicious_symbols,
        "n_symbols_evaluated": n_sym,
        "mean_IC_cs": ic,
        "t_stat_cs": t,
        "net_spread_bps_cs": net,
        "cost_bps": cost,
        "evaluated_on": "cv_development",
        "thresholds": th.model_dump(),
    }
