"""LightGBM: gradient-boosted trees, saved as the native text booster (``model.txt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from ml.families.base import ModelFamily, normalise_importance


class LightGBMFamily(ModelFamily):
    name = "LightGBM"
    default_params: dict[str, Any] = {
        "objective": "regression",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 200,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 10.0,
        "num_boost_round": 150,
        "num_threads": 1,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: list[str],
        params: dict[str, Any],
        seed: int,
        groups: np.ndarray | None = None,
    ) -> lgb.Booster:
        p = dict(params)
        rounds = int(p.pop("num_boost_round"))
        p["seed"] = seed
        data = lgb.Dataset(X, label=y, feature_name=list(feature_names), free_raw_data=True)
        return lgb.train(p, data, num_boost_round=rounds)

    def predict(self, model: lgb.Booster, X: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(X, num_threads=1), dtype=float)

    def save(self, model: lgb.Booster, path: Path) -> None:
        model.save_model(str(path))

    def load_bytes(self, data: bytes) -> lgb.Booster:
        return lgb.Booster(model_str=data.decode("utf-8"))

    def n_features(self, model: lgb.Booster) -> int:
        return int(model.num_feature())

    def importance(self, model: lgb.Booster, feature_names: list[str]) -> dict[str, float]:
        return normalise_importance(model.feature_importance(importance_type="gain"), feature_names)
