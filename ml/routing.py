"""Routing: which view(s) each target is trained in, by a fixed, documented rule order.

Rules, first match wins (numbers come from :class:`ml.config.RoutingThresholds`):

1. ``no_skill`` — CS not good and fewer than ``frac_some`` of symbols (or none) good → BLOCKED.
2. ``suspicious`` — skill01_cs >= suspicious_skill01 and t < suspicious_t_min → BLOCKED (likely leakage).
3. ``too_many_symbols`` — CS good, per-symbol models wanted, but more symbols than
   ``max_symbols_symbol_specific`` → CROSS_SECTIONAL.
4. ``cs_and_most_symbols`` — CS good and at least ``frac_most`` of symbols good → CROSS_SECTIONAL.
5. ``cs_only`` — CS good and fewer than ``frac_some`` of symbols good → CROSS_SECTIONAL.
6. ``symbols_only`` — CS not good, at least ``frac_some`` of symbols good → SYMBOL_SPECIFIC
   (or BLOCKED with rule ``too_many_symbols`` when over the cap).
7. ``cs_and_some_symbols`` — CS good, between ``frac_some`` and ``frac_most`` of symbols good → BOTH.

CS good: mean per-timestamp IC >= cs_ic_min and t >= cs_t_min. A symbol is good: its own model's
time-series IC >= symbol_ic_min and t >= symbol_t_min, and it is not itself suspicious (skill01 >=
suspicious_skill01 with t < suspicious_t_min; such symbols are named in the reason and never count as good).
"""

from __future__ import annotations

from typing import Any

from ml.config import RoutingThresholds
from ml.metrics import skill01
from ml.ranking import TargetEvaluation


def route_target(ev: TargetEvaluation, th: RoutingThresholds) -> dict[str, Any]:
    """The routing decision document for one target (contract: routing_decision.json)."""
    ic, t = ev.cs["mean_IC"], ev.cs["t_stat"]
    cs_good = ic >= th.cs_ic_min and t >= th.cs_t_min
    suspicious_symbols = sorted(
        s
        for s, m in ev.symbols.items()
        if skill01(m["ts_IC"]) >= th.suspicious_skill01 and m["t_stat"] < th.suspicious_t_min
    )
    good = sorted(
        (
            s
            for s, m in ev.symbols.items()
            if m["ts_IC"] >= th.symbol_ic_min and m["t_stat"] >= th.symbol_t_min and s not in suspicious_symbols
        ),
        key=lambda s: -ev.symbols[s]["ts_IC"],
    )
    n_sym = len(ev.symbols)
    frac = len(good) / n_sym if n_sym else 0.0
    s01 = ev.skill01_cs
    nums = (
        f"IC_cs={ic:.4f} (min {th.cs_ic_min}), t_cs={t:.2f} (min {th.cs_t_min}), "
        f"good symbols {len(good)}/{n_sym} = {frac:.2f} (some >= {th.frac_some}, most >= {th.frac_most})"
    )
    if suspicious_symbols:
        nums += f"; suspicious symbols excluded {suspicious_symbols}"
    if not cs_good and (frac < th.frac_some or not good):
        rule, route = "no_skill", "BLOCKED"
    elif s01 >= th.suspicious_skill01 and t < th.suspicious_t_min:
        rule, route = "suspicious", "BLOCKED"
        nums = f"skill01_cs={s01:.3f} >= {th.suspicious_skill01} with t={t:.2f} < {th.suspicious_t_min}"
    elif cs_good and frac >= th.frac_some and n_sym > th.max_symbols_symbol_specific:
        rule, route = "too_many_symbols", "CROSS_SECTIONAL"
        nums += f"; {n_sym} symbols > cap {th.max_symbols_symbol_specific}"
    elif cs_good and frac >= th.frac_most:
        rule, route = "cs_and_most_symbols", "CROSS_SECTIONAL"
    elif cs_good and (frac < th.frac_some or not good):
        rule, route = "cs_only", "CROSS_SECTIONAL"
    elif not cs_good:
        if n_sym > th.max_symbols_symbol_specific:
            rule, route = "too_many_symbols", "BLOCKED"
            nums += f"; {n_sym} symbols > cap {th.max_symbols_symbol_specific} and CS not good"
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
        "n_symbols_evaluated": n_sym,
        "mean_IC_cs": ic,
        "t_stat_cs": t,
        "thresholds": th.model_dump(),
    }
