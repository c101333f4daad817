"""Target ranking: walk-forward skill of each target on the development data, pooled and per symbol, across
several families.

Everything here reads the **development** rows only (:meth:`ml.cv.Holdout.development`): these are the numbers
that rank targets, select features, route and pick winner symbols, so they are optimistic about the models they
choose ("CV after selection"); the holdout scores those models afterwards (:mod:`ml.training`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from contracts.families import canonical_family
from ml.cv import CVConfig, Fold, bar_grid, walk_forward_folds
from ml.families import get_family
from ml.families.base import ModelFamily
from ml.inputs import FeatureInputs, ModelInputs, timestamp_groups
from ml.metrics import (
    DEFAULT_EVALUATION,
    EvaluationConfig,
    cross_sectional_metrics,
    skill01,
    time_series_metrics,
)
from ml.targets import target_end_column


def training_rows(panel: pl.DataFrame, features: list[str], target: str) -> pl.DataFrame:
    """Rows usable for fitting: the target present and every feature past its warm-up (not null)."""
    return FeatureInputs(features).rows(panel, target)


@dataclass
class OOS:
    """Out-of-sample predictions of one family on one view, and its feature importance averaged over folds."""

    predictions: pl.DataFrame  # ts, symbol, y, ret, score, fold
    importance: dict[str, float]


def score_rows(
    fam: ModelFamily,
    model: Any,
    rows: pl.DataFrame,
    features: list[str],
    target: str,
    ret: str,
    inputs: ModelInputs | None = None,
) -> pl.DataFrame:
    """``ts, symbol, y, ret, score``: the model's scores of ``rows`` beside their target and forward return
    (``inputs``: what the family reads, default the ``features`` columns)."""
    inputs = inputs or FeatureInputs(features)
    return rows.select("ts", "symbol", pl.col(target).alias("y"), pl.col(ret).alias("ret")).with_columns(
        pl.Series("score", fam.predict(model, inputs.matrix(rows)), dtype=pl.Float64)
    )


def oos_predictions(
    rows: pl.DataFrame,
    features: list[str],
    target: str,
    family: str,
    params: dict[str, Any],
    folds: list[Fold],
    seed: int,
    ret: str | None = None,
    inputs: ModelInputs | None = None,
) -> OOS:
    """Fit on each fold's purged training rows and score its validation rows.

    ``ret`` names the forward-return column carried beside ``y`` (default: the target); ``inputs`` what the family
    reads (default: the ``features`` columns).
    """
    fam = get_family(family)
    p = fam.params(params)
    inputs = inputs or FeatureInputs(features)
    end = target_end_column(target)
    ret = ret or target
    parts, importances = [], []
    for fold in folds:
        tr = fold.train(rows, end)
        va = fold.validation(rows)
        if tr.height < 50 or va.height == 0:
            continue
        model = fam.fit(inputs.matrix(tr), tr[target].to_numpy(), features, p, seed, groups=timestamp_groups(tr))
        imp = fam.importance(model, features)
        if imp:
            importances.append(imp)
        parts.append(
            score_rows(fam, model, va, features, target, ret, inputs).with_columns(
                pl.lit(fold.index, dtype=pl.Int32).alias("fold")
            )
        )
    importance = _average_importance(importances, features)
    if not parts:
        schema = {"ts": rows["ts"].dtype, "symbol": pl.String, "y": pl.Float64, "ret": pl.Float64}
        empty = pl.DataFrame(schema={**schema, "score": pl.Float64, "fold": pl.Int32})
        return OOS(empty, {})
    return OOS(pl.concat(parts), importance)


def _average_importance(importances: list[dict[str, float]], features: list[str]) -> dict[str, float]:
    """The folds' normalised importances averaged and normalised again (a fold whose model is constant adds 0)."""
    if not importances:
        return {}
    mean = {k: float(np.mean([imp.get(k, 0.0) for imp in importances])) for k in features}
    total = sum(mean.values())
    return {k: v / total for k, v in mean.items()} if total > 0 else mean


def grid_rows(ts: pl.Series, grid: np.ndarray) -> np.ndarray:
    """Positions of ``ts`` on the bar grid."""
    return np.searchsorted(grid, ts.to_numpy())


def symbol_metrics(
    predictions: pl.DataFrame, horizon_bars: int, cfg: EvaluationConfig, grid: np.ndarray
) -> dict[str, float | None]:
    """Time-series metrics of one symbol's predictions (``ts, y, ret, score``) on the panel's bar grid."""
    p = predictions.sort("ts")
    return time_series_metrics(
        p["score"].to_numpy(), p["y"].to_numpy(), horizon_bars, cfg, p["ret"].to_numpy(), grid_rows(p["ts"], grid)
    )


def fold_scores(oos: pl.DataFrame, horizon_bars: int, cross_sectional: bool) -> list[float]:
    """Per-fold mean IC (cross-sectional) or time-series IC (one symbol): the model_meta cv_scores."""
    out = []
    for fold in sorted(oos["fold"].unique().to_list()):
        part = oos.filter(pl.col("fold") == fold).sort("ts")
        if cross_sectional:
            out.append(cross_sectional_metrics(part, horizon_bars=horizon_bars)["mean_IC"])
        else:
            out.append(time_series_metrics(part["score"].to_numpy(), part["y"].to_numpy(), horizon_bars)["ts_IC"])
    return out


def _mean_dicts(dicts: list[dict[str, Any]]) -> dict[str, float | None]:
    """Key-wise mean; a key that is None in every dict stays None (Nones are skipped). A break-even cost is the
    mean spread over the mean two-way turnover, not a mean of ratios."""
    keys = dicts[0].keys() if dicts else []
    out: dict[str, float | None] = {}
    for k in keys:
        values = [d[k] for d in dicts if d.get(k) is not None]
        out[k] = float(np.mean(values)) if values else None
    if "breakeven_cost_bps" in out and out.get("spread_bps") is not None:
        to = out.get("turnover_frac") or 0.0
        out["breakeven_cost_bps"] = out["spread_bps"] / (2.0 * to) if to > 0 else None
    return out


@dataclass
class TargetEvaluation:
    """Skill of one target across the ranking families, measured by walk-forward CV on the development data.

    Attributes:
        cs: pooled CROSS_SECTIONAL metrics averaged over families (mean_IC, IC_IR, t_stat, net_spread_bps, …).
        cs_by_family: the same per family.
        symbols: per symbol, its own models' time-series metrics averaged over families (ts_IC, t_stat, …).
        importance: per family, the pooled model's normalised feature importance (averaged over folds).
        symbol_importance: per symbol, the families' averaged importance in that symbol's own model.
    """

    target: str
    horizon_bars: int
    cs: dict[str, float | None]
    cs_by_family: dict[str, dict[str, float | None]] = field(default_factory=dict)
    symbols: dict[str, dict[str, float | None]] = field(default_factory=dict)
    importance: dict[str, dict[str, float]] = field(default_factory=dict)
    symbol_importance: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def skill01_cs(self) -> float:
        return skill01(self.cs["mean_IC"])

    def to_row(self) -> dict[str, Any]:
        """One row of the ranking table: the CS metrics (``cs_``-prefixed, costs included) and per-symbol summary."""
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


def _by_family(params: dict[str, Any], families: list[str]) -> dict[str, dict[str, Any]]:
    if params and not all(isinstance(v, dict) for v in params.values()):
        if len(families) != 1:
            raise ValueError("flat hyper-parameter overrides need exactly one family; use {family: overrides}")
        params = {families[0]: params}
    return {canonical_family(k): v for k, v in params.items()}


def evaluate_target(
    development: pl.DataFrame,
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
    evaluation: EvaluationConfig = DEFAULT_EVALUATION,
    ret: str | None = None,
    symbol_params: dict[str, dict[str, Any]] | None = None,
) -> TargetEvaluation:
    """Walk-forward skill of ``target`` on the development rows for each family: a pooled model, one per symbol.

    ``development`` must hold no holdout row (``Holdout.development``) and the target's ``__end_ts`` column.
    ``params`` maps family → hyper-parameter overrides (a flat dict applies to a single family) for the pooled
    models, ``symbol_params`` for the per-symbol ones (default: ``params``); ``ret`` names the forward-return column
    the cost metrics use (default: the target). ``on_step`` is called after each family and each symbol (a progress
    heartbeat).
    """
    families = [canonical_family(f) for f in ([families] if isinstance(families, str) else families)]
    params = _by_family(params, families)
    symbol_params = params if symbol_params is None else _by_family(symbol_params, families)
    rows = training_rows(development, features, target)
    folds = walk_forward_folds(rows["ts"], cv, reach_bars)
    ev = TargetEvaluation(target, horizon_bars, cs={})
    for fam in families:
        oos = oos_predictions(rows, features, target, fam, params.get(fam, {}), folds, seed, ret)
        ev.cs_by_family[fam] = cross_sectional_metrics(
            oos.predictions, horizon_bars=horizon_bars, cfg=evaluation, ret="ret"
        )
        ev.importance[fam] = oos.importance
        if on_step:
            on_step(f"{target}: pooled {fam}")
    ev.cs = _mean_dicts(list(ev.cs_by_family.values()))
    if per_symbol:
        grid = bar_grid(rows["ts"])
        for (symbol,), part in rows.partition_by("symbol", as_dict=True, maintain_order=True).items():
            metrics, imps = [], []
            for fam in families:
                oos = oos_predictions(part, features, target, fam, symbol_params.get(fam, {}), folds, seed, ret)
                metrics.append(symbol_metrics(oos.predictions, horizon_bars, evaluation, grid))
                if oos.importance:
                    imps.append(oos.importance)
            ev.symbols[symbol] = _mean_dicts(metrics)
            ev.symbol_importance[symbol] = _mean_dicts(imps) if imps else {}
            if on_step:
                on_step(f"{target}: {symbol}")
    return ev
