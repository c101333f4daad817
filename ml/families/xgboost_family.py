"""XGBoost: gradient-boosted trees (``hist``), saved as the native JSON booster (``model.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from ml.families.base import ModelFamily, normalise_importance


class XGBoostFamily(ModelFamily):
    """``xgboost.train`` on a ``DMatrix``; NaN is handled natively (learned default directions).

    Feature names are not stored in the booster (XGBoost restricts their characters); columns are
    positional ``f0, f1, ...`` and are mapped back to ``feature_names`` for importance.
    """

    name = "XGBoost"
    default_params: dict[str, Any] = {
        "objective": "reg:squarederror",
        "tree_method": "hist",
        "eta": 0.05,
        "max_depth": 4,
        "min_child_weight": 50,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "lambda": 10.0,
        "num_boost_round": 150,
        "nthread": 1,
        "verbosity": 0,
    }

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: list[str],
        params: dict[str, Any],
        seed: int,
        groups: np.ndarray | None = None,
    ) -> xgb.Booster:
        p = dict(params)
        rounds = int(p.pop("num_boost_round", 150))
        p.setdefault("nthread", 1)
        p.setdefault("tree_method", "hist")
        p["seed"] = int(seed)
        data = xgb.DMatrix(
            np.asarray(X, dtype=float), label=np.asarray(y, dtype=float), missing=np.nan, nthread=int(p["nthread"])
        )
        return xgb.train(p, data, num_boost_round=rounds)

    def predict(self, model: xgb.Booster, X: np.ndarray) -> np.ndarray:
        # in place: the trees walk the array itself (no DMatrix copy), the same values as ``predict(DMatrix)``
        return np.asarray(model.inplace_predict(np.asarray(X, dtype=float), missing=np.nan), dtype=float).reshape(-1)

    def save(self, model: xgb.Booster, path: Path) -> None:
        model.save_model(str(path))

    def load_bytes(self, data: bytes) -> xgb.Booster:
        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        return booster

    def n_features(self, model: xgb.Booster) -> int:
        return int(model.num_features())

    def importance(self, model: xgb.Booster, feature_names: list[str]) -> dict[str, float]:
        gain = model.get_score(importance_type="gain")
        # Keys are ``f<i>`` (no names stored) or the names themselves if a booster was trained with them.
        values = [float(gain.get(f"f{i}", gain.get(name, 0.0))) for i, name in enumerate(feature_names)]
        return normalise_importance(np.asarray(values), feature_names)
