"""Which of the models a policy picks the engine can trade: loaded and verified, tradable, out of sample."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from live.config import EngineConfig
from live.engine.cycle import TradedModel
from live.loader import catalog_facts, load_selected
from ml.targets import TargetSpec


def fits_holding(spec: TargetSpec, holding_bars: int) -> bool:
    """A position entered at the next bar's open and held ``holding_bars`` bars earns this target's return."""
    if spec.entry == "next_open":
        return spec.delay_bars + spec.horizon_bars <= holding_bars
    return spec.delay_bars >= 1 and spec.delay_bars + spec.horizon_bars <= holding_bars


def select_traded(
    results: Path, cfg: EngineConfig, interval_minutes: float
) -> tuple[list[TradedModel], list[str], list[str]]:
    """(the models the engine trades, load errors, models skipped with why)."""
    loaded, refused = load_selected(results, cfg.policy, interval_minutes=interval_minutes, strict=cfg.strict)
    facts = catalog_facts(results, loaded) if loaded else {}
    traded, skipped = [], []
    for m in loaded:
        f = facts[m.key]
        spec = TargetSpec.from_name(m.meta.target, interval_minutes)
        if f["research_only"] or not spec.tradable:
            skipped.append(f"{m.key}: research-only target (no order can fill at its start)")
            continue
        if not fits_holding(spec, cfg.holding_bars):
            skipped.append(f"{m.key}: its return window does not fit a {cfg.holding_bars}-bar holding")
            continue
        if f["data_end"] is None or f["holdout_ic"] is None:
            skipped.append(f"{m.key}: the catalog records no data_end or holdout IC")
            continue
        data_end = datetime.fromisoformat(f["data_end"].replace("Z", "+00:00"))
        bound = data_end + timedelta(minutes=spec.reach_bars * interval_minutes)
        traded.append(
            TradedModel(m, spec, float(f["holdout_ic"]), data_end, bound + timedelta(microseconds=1), f["model_dir"])
        )
    return traded, refused, skipped
