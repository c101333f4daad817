"""Gradient-boosting rankers on the feature table (contract 1.4): one query group per timestamp.

* ``LightGBMRanker``: LightGBM's ``lambdarank`` (default) or ``rank_xendcg`` objective, saved as the native text
  booster (``model.txt``).
* ``XGBoostRanker``: XGBoost's ``rank:pairwise`` (default, or another ``rank:*`` objective) with a sorted ``qid``,
  saved as the native JSON booster (``model.json``).

Labels are integer per-timestamp quantiles of the target: ``floor(pct * label_levels)`` clipped to
``label_levels - 1``, with ``pct`` the target's rank within its timestamp in [0, 1) (ties share the lower rank);
``label_levels`` is 5 by default. Rows are sorted by timestamp (stable) before they are grouped. Predictions are
scores whose order within one timestamp is what they mean.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import xgboost as xgb

from ml.families.lightgbm_family import LightGBMFamily
from ml.families.xgboost_family import XGBoostFamily


def quantile_labels(y: np.ndarray, groups: np.ndarray, levels: int) -> np.ndarray:
    """Integer labels ``0 .. levels-1``: each row's quantile of ``y`` within its group (module docstring)."""
    y = np.asarray(y, dtype=float)
    groups = np.asarray(groups)
    out = np.zeros(len(y), dtype=np.int32)
    order = np.lexsort((y, groups))
    g_sorted = groups[order]
    starts = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
    sizes = np.diff(np.r_[starts, len(y)])
    rank_in_group = np.arange(len(y)) - np.repeat(starts, sizes)
    pct = rank_in_group / np.repeat(sizes, sizes)
    out[order] = np.minimum((pct * levels).astype(np.int32), levels - 1)
    return out


def _ranked(X: np.ndarray, y: np.ndarray, groups: np.ndarray | None, levels: int, name: str):
    """The rows sorted by timestamp (stable): ``X``, the quantile labels, each row's group index and the group sizes."""
    if groups is None:
        raise ValueError(f"{name} ranks within timestamps: fit needs the rows' timestamp groups")
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    _, qid, sizes = np.unique(groups[order], return_inverse=True, return_counts=True)
    labels = quantile_labels(y, groups, levels)[order]
    return np.asarray(X, dtype=float)[order], labels, qid, sizes


class LightGBMRankerFamily(LightGBMFamily):
    """LightGBM with a ranking objective; one query per timestamp (the booster file and inference are LightGBM's)."""

    name = "LightGBMRanker"
    default_params: dict[str, Any] = {
        **LightGBMFamily.default_params,
        "objective": "lambdarank",
        "label_levels": 5,
        "lambdarank_truncation_level": 1000,  # every symbol of a timestamp counts, not only the top 30
        "min_data_in_leaf": 200,
    }

    def ranking_loss(self, params: dict[str, Any]) -> str:
        objective = {**self.default_params, **params}["objective"]
        if objective not in ("lambdarank", "rank_xendcg"):
            raise ValueError(f"LightGBMRanker objective {objective!r}: choose lambdarank or rank_xendcg")
        return objective

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: list[str],
        params: dict[str, Any],
        seed: int,
        groups: np.ndarray | None = None,
    ) -> lgb.Booster:
        p = {**self.default_params, **params}
        self.ranking_loss(p)
        levels = int(p.pop("label_levels"))
        rounds = int(p.pop("num_boost_round"))
        p["seed"] = seed
        p["label_gain"] = [float(i) for i in range(levels)]
        X_sorted, labels, _, sizes = _ranked(X, y, groups, levels, self.name)
        data = lgb.Dataset(X_sorted, label=labels, group=sizes, feature_name=list(feature_names))
        return lgb.train(p, data, num_boost_round=rounds)


class XGBoostRankerFamily(XGBoostFamily):
    """XGBoost with a ranking objective; ``qid`` = the timestamp, rows sorted by it."""

    name = "XGBoostRanker"
    default_params: dict[str, Any] = {**XGBoostFamily.default_params, "objective": "rank:pairwise", "label_levels": 5}

    def ranking_loss(self, params: dict[str, Any]) -> str:
        objective = {**self.default_params, **params}["objective"]
        if not str(objective).startswith("rank:"):
            raise ValueError(f"XGBoostRanker objective {objective!r}: choose a rank:* objective (rank:pairwise)")
        return objective

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: list[str],
        params: dict[str, Any],
        seed: int,
        groups: np.ndarray | None = None,
    ) -> xgb.Booster:
        p = {**self.default_params, **params}
        self.ranking_loss(p)
        levels = int(p.pop("label_levels"))
        rounds = int(p.pop("num_boost_round", 150))
        p["seed"] = int(seed)
        X_sorted, labels, qid, _ = _ranked(X, y, groups, levels, self.name)
        data = xgb.DMatrix(X_sorted, label=labels, qid=qid, missing=np.nan, nthread=int(p["nthread"]))
        return xgb.train(p, data, num_boost_round=rounds)
