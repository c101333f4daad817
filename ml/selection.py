"""Feature selection: an importance consensus across families, then top-K with correlation pruning.

For the CROSS_SECTIONAL view the consensus averages the pooled models' normalised importances over the
ranking families; for the SYMBOL_SPECIFIC view it averages the per-symbol models' importances over the
symbols that show skill (weighted by their time-series IC), since a per-symbol effect is invisible to a
pooled model. Features are then taken in consensus order, skipping any whose absolute Spearman
correlation with an already selected feature exceeds ``max_abs_corr``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from ml.ranking import TargetEvaluation


class SelectionConfig(BaseModel):
    """Feature selection settings.

    Attributes:
        top_k: features kept per target and view (20).
        max_abs_corr: a candidate more correlated than this with a kept feature is dropped (0.9).
        sample_rows: rows sampled to measure feature correlations (50,000).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    top_k: int = Field(20, ge=1)
    max_abs_corr: float = Field(0.9, gt=0, le=1)
    sample_rows: int = Field(50_000, ge=100)


def consensus(importances: list[dict[str, float]], weights: list[float] | None = None) -> dict[str, float]:
    """Weighted mean of normalised importance dicts (missing features count as 0)."""
    if not importances:
        return {}
    weights = weights or [1.0] * len(importances)
    total_w = sum(weights) or 1.0
    names = sorted({k for imp in importances for k in imp})
    out = {}
    for n in names:
        out[n] = float(sum(w * imp.get(n, 0.0) for imp, w in zip(importances, weights, strict=True)) / total_w)
    return out


def _corr_matrix(panel: pl.DataFrame, names: list[str], sample_rows: int, seed: int) -> np.ndarray:
    sample = panel.select(names).drop_nulls()
    if sample.height > sample_rows:
        sample = sample.sample(sample_rows, seed=seed)
    ranks = sample.select([pl.col(n).rank("average") for n in names]).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(ranks, rowvar=False)
    return np.nan_to_num(np.atleast_2d(corr), nan=0.0)


def select(panel: pl.DataFrame, scores: dict[str, float], cfg: SelectionConfig, seed: int = 0) -> dict[str, Any]:
    """Top-K by consensus score with correlation pruning; ``selected`` is sorted (contract rule 1)."""
    ranked = sorted(scores, key=lambda n: (-scores[n], n))
    corr = _corr_matrix(panel, ranked, cfg.sample_rows, seed) if ranked else np.zeros((0, 0))
    index = {n: i for i, n in enumerate(ranked)}
    kept: list[str] = []
    dropped: dict[str, dict[str, Any]] = {}
    for name in ranked:
        if len(kept) >= cfg.top_k:
            break
        partner = max(kept, key=lambda k: abs(corr[index[name], index[k]]), default=None)
        if partner is not None and abs(corr[index[name], index[partner]]) > cfg.max_abs_corr:
            dropped[name] = {"correlated_with": partner, "abs_corr": float(abs(corr[index[name], index[partner]]))}
            continue
        kept.append(name)
    return {
        "selected": sorted(kept),
        "ranked": [{"feature": n, "score": scores[n]} for n in ranked],
        "dropped_correlated": dropped,
        "top_k": cfg.top_k,
        "max_abs_corr": cfg.max_abs_corr,
    }


def select_for_target(
    panel: pl.DataFrame, ev: TargetEvaluation, cfg: SelectionConfig, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Selections for both views of one target: ``{"CROSS_SECTIONAL": …, "SYMBOL_SPECIFIC": …}``."""
    cs_scores = consensus(list(ev.importance.values()))
    skilled = {s: max(m["ts_IC"], 0.0) for s, m in ev.symbols.items() if ev.symbol_importance.get(s)}
    if not any(skilled.values()):
        skilled = {s: 1.0 for s in skilled}
    ss_scores = consensus([ev.symbol_importance[s] for s in skilled], list(skilled.values())) or cs_scores
    return {
        "CROSS_SECTIONAL": select(panel, cs_scores, cfg, seed),
        "SYMBOL_SPECIFIC": select(panel, ss_scores, cfg, seed),
    }
