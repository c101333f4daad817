"""Target ranking: out-of-sample skill of each target, pooled and per symbol, across several families."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from contracts.families import canonical_family
from ml.cv import CVConfig, Fold, walk_forward_folds
from ml.families import get_family
from ml.metrics import cross_sectional_metrics, skill01, time_series_metrics


def training_rows(panel: pl.DataFrame, features: list[str], target: str) -> pl.DataFrame:
    """Rows usable for fitting: the target present and every feature past its warm-up (not null)."""
    return panel.drop_nulls([*features, target])


@dataclass
class OOS:
    """Out-of-sample predictions of one family on one view, and the last fold's feature importance."""

    predictions: pl.DataFrame  # ts, symbol, y, score, fold
    importance: dict[str, float]


def oos_predictions(
    rows: pl.DataFrame,
    features: list[str],
    target: str,
    family: str,
    params: dict[str, Any],
    folds: list[Fold],
    seed: int,
) -> OOS:
    """Fit on each fold's training timestamps and score its validation timestamps."""
    fam = get_family(family)
    p = fam.params(params)
    parts, importance = [], {}
    ts = rows["ts"].to_numpy()
    for fold in folds:
        tr = rows.filter(pl.Series(np.isin(ts, fold.train_ts)))
        va = rows.filter(pl.Series(np.isin(ts, fold.val_ts)))
        if tr.height < 50 or va.height == 0:
            continue
        model = fam.fit(tr.select(features).to_numpy(), tr[target].to_numpy(), features, p, seed)
        importance = fam.importance(model, features)
        parts.append(
            va.select("ts", "symbol", pl.col(target).alias("y")).with_columns(
                pl.Series("score", fam.predict(model, va.select(features).to_numpy()), dtype=pl.Float64),
                pl.lit(fold.index, dtype=pl.Int32).alias("fold"),
            )
        )
    if not parts:
        empty = pl.DataFrame(
            schema={"ts": rows["ts"].dtype, "symbol": pl.String, "y": pl.Float64, "score": pl.Float64, "fold": pl.Int32}
        )
        return OOS(empty, {})
    return OOS(pl.concat(parts), importance)


def fold_scores(oos: pl.DataFrame, horizon_bars: int, cross_sectional: bool) -> list[float]:
    """Per-fold mean IC (cross-sectional) or time-series IC (one symbol): the model_meta cv_scores."""
    out = []
    for fold in sorted(oos["fold"].unique().to_list()):
        part = oos.filter(pl.col("fold") == fold)
        if cross_sectional:
            out.append(cross_sectional_metrics(part, horizon_bars=horizon_bars)["mean_IC"])
        else:
            out.append(time_series_metrics(part["score"].to_numpy(), part["y"].to_numpy(), horizon_bars)["ts_IC"])
    return out


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = dicts[0].keys() if dicts else []
    return {k: float(np.mean([d[k] for d in dicts])) for k in keys}


@dataclass
class TargetEvaluation:
    """Skill of one target across the ranking families.

    Attributes:
        cs: pooled CROSS_SECTIONAL metrics, averaged over families (mean_IC, mean_RankIC, IC_IR, t_stat, …).
        cs_by_family: the same per family.
        symbols: per symbol, its own models' time-series metrics averaged over families (ts_IC, t_stat, …).
        importance: per family, the pooled model's normalised feature importance.
        symbol_importance: per symbol, the families' averaged importance in that symbol's own model.
    """

    target: str
    horizon_bars: int
    cs: dict[str, float]
    cs_by_family: dict[str, dict[str, float]] = field(default_factory=dict)
    symbols: dict[str, dict[str, float]] = field(default_factory=dict)
    importance: dict[str, dict[str, float]] = field(default_factory=dict)
    symbol_importance: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def skill01_cs(self) -> float:
        return skill01(self.cs["mean_IC"])

    def to_row(self) -> dict[str, Any]:
        sym_ic = [m["ts_IC"] for m in self.symbols.values()]
        return {
            "target": self.target,
            "horizon_bars": self.horizon_bars,
            **{f"cs_{k}": v for k, v in self.cs.items()},
            "skill01_cs": self.skill01_cs,
            **{f"cs_IC_{fam}": m["mean_IC"] for fam, m in sorted(self.cs_by_family.items())},
            "n_symbols_evaluated": len(self.symbols),
            "sym_mean_ts_IC": float(np.mean(sym_ic)) if sym_ic else 0.0,
            "skill01_sym_mean": float(np.mean([skill01(x) for x in sym_ic])) if sym_ic else 0.5,
        }


def evaluate_target(
    panel: pl.DataFrame,
    features: list[str],
    target: str,
    horizon_bars: int,
    reach_bars: int,
    families: list[str] | str,
    params: dict[str, dict[str, Any]] | dict[str, Any],
    cv: CVConfig,
    seed: int,
    per_symbol: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> TargetEvaluation:
    """Walk-forward OOS skill of ``target`` for each family: a pooled model, and one model per symbol.

    ``params`` maps family → hyper-parameter overrides (a flat dict applies to a single family).
    ``on_step`` is called after each family and each symbol (a progress heartbeat).
    """
    families = [canonical_family(f) for f in ([families] if isinstance(families, str) else families)]
    if params and not all(isinstance(v, dict) for v in params.values()):
        if len(families) != 1:
            raise ValueError("flat hyper-parameter overrides need exactly one family; use {family: overrides}")
        params = {families[0]: params}
    params = {canonical_family(k): v for k, v in params.items()}
    rows = training_rows(panel, features, target)
    folds = walk_forward_folds(rows["ts"].to_numpy(), cv, reach_bars)
    ev = TargetEvaluation(target, horizon_bars, cs={})
    for fam in families:
        oos = oos_predictions(rows, features, target, fam, params.get(fam, {}), folds, seed)
        ev.cs_by_family[fam] = cross_sectional_metrics(oos.predictions, horizon_bars=horizon_bars)
        ev.importance[fam] = oos.importance
        if on_step:
            on_step(f"{target}: pooled {fam}")
    ev.cs = _mean_dicts(list(ev.cs_by_family.values()))
    if per_symbol:
        for (symbol,), part in rows.partition_by("symbol", as_dict=True, maintain_order=True).items():
            metrics, imps = [], []
            for fam in families:
                oos = oos_predictions(part, features, target, fam, params.get(fam, {}), folds, seed)
                p = oos.predictions
                metrics.append(time_series_metrics(p["score"].to_numpy(), p["y"].to_numpy(), horizon_bars))
                if oos.importance:
                    imps.append(oos.importance)
            ev.symbols[symbol] = _mean_dicts(metrics)
            ev.symbol_importance[symbol] = _mean_dicts(imps) if imps else {}
            if on_step:
                on_step(f"{target}: {symbol}")
    return ev
