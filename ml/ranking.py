"""Target ranking: out-of-sample skill of each target in the pooled view and per symbol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ml.cv import CVConfig, Fold, walk_forward_folds
from ml.families import get_family
from ml.metrics import cross_sectional_metrics, skill01, time_series_metrics


def training_rows(panel: pl.DataFrame, features: list[str], target: str) -> pl.DataFrame:
    """Rows usable for fitting: every feature and the target present (warm-up and tail rows dropped)."""
    return panel.drop_nulls([*features, target])


def oos_predictions(
    rows: pl.DataFrame,
    features: list[str],
    target: str,
    family: str,
    params: dict[str, Any],
    folds: list[Fold],
    seed: int,
) -> pl.DataFrame:
    """Out-of-sample scores: ``ts, symbol, score, y, fold`` for every validation row of every fold."""
    fam = get_family(family)
    p = fam.params(params)
    parts = []
    ts = rows["ts"].to_numpy()
    for fold in folds:
        tr = rows.filter(pl.Series(np.isin(ts, fold.train_ts)))
        va = rows.filter(pl.Series(np.isin(ts, fold.val_ts)))
        if tr.height < 50 or va.height == 0:
            continue
        model = fam.fit(tr.select(features).to_numpy(), tr[target].to_numpy(), features, p, seed)
        parts.append(
            va.select("ts", "symbol", pl.col(target).alias("y")).with_columns(
                pl.Series("score", fam.predict(model, va.select(features).to_numpy())),
                pl.lit(fold.index).alias("fold"),
            )
        )
    if not parts:
        return pl.DataFrame(
            schema={"ts": rows["ts"].dtype, "symbol": pl.String, "y": pl.Float64, "score": pl.Float64, "fold": pl.Int32}
        )
    return pl.concat(parts)


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


@dataclass
class TargetEvaluation:
    """Skill of one target: the pooled view's metrics and every symbol's own model's metrics."""

    target: str
    horizon_bars: int
    cs: dict[str, float]
    symbols: dict[str, dict[str, float]] = field(default_factory=dict)

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
    family: str,
    params: dict[str, Any],
    cv: CVConfig,
    seed: int,
    per_symbol: bool = True,
) -> TargetEvaluation:
    """Walk-forward OOS skill of ``target``: pooled model over all symbols, and one model per symbol."""
    rows = training_rows(panel, features, target)
    folds = walk_forward_folds(rows["ts"].to_numpy(), cv, reach_bars)
    oos = oos_predictions(rows, features, target, family, params, folds, seed)
    evaluation = TargetEvaluation(target, horizon_bars, cross_sectional_metrics(oos, horizon_bars=horizon_bars))
    if per_symbol:
        for (symbol,), part in rows.partition_by("symbol", as_dict=True, maintain_order=True).items():
            sym_oos = oos_predictions(part, features, target, family, params, folds, seed)
            evaluation.symbols[symbol] = time_series_metrics(
                sym_oos["score"].to_numpy(), sym_oos["y"].to_numpy(), horizon_bars
            )
    return evaluation
