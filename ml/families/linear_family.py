"""Linear families (Ridge, ElasticNet): a scikit-learn pipeline median-impute → standardise → model,
saved whole with joblib (``model.joblib``): the fitted imputer and scaler travel inside the one file its checksum
covers (no separate, unverified pickles).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ml.families.base import ModelFamily, normalise_importance


def _finite(X: np.ndarray) -> np.ndarray:
    """Float64 copy of ``X`` with ±inf treated as missing (NaN), which the imputer then fills."""
    X = np.asarray(X, dtype=float)
    return np.where(np.isfinite(X), X, np.nan)


class _LinearFamily(ModelFamily):
    """Shared pipeline handling; subclasses build the estimator from the params."""

    def _estimator(self, params: dict[str, Any], seed: int) -> Any:
        raise NotImplementedError

    def fit(
        self, X: np.ndarray, y: np.ndarray, feature_names: list[str], params: dict[str, Any], seed: int
    ) -> Pipeline:
        pipeline = Pipeline(
            [
                # keep_empty_features: an all-NaN column stays (imputed to 0) so coef_ lines up with feature_names.
                ("imputer", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scaler", StandardScaler()),
                ("model", self._estimator(dict(params), seed)),
            ]
        )
        pipeline.fit(_finite(X), np.asarray(y, dtype=float))
        return pipeline

    def predict(self, model: Pipeline, X: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(_finite(X)), dtype=float).reshape(-1)

    def save(self, model: Pipeline, path: Path) -> None:
        joblib.dump(model, path, compress=3)

    def load_bytes(self, data: bytes) -> Pipeline:
        return joblib.load(io.BytesIO(data))

    def n_features(self, model: Pipeline) -> int:
        return int(model.n_features_in_)

    def importance(self, model: Pipeline, feature_names: list[str]) -> dict[str, float]:
        # Coefficients act on standardised inputs, so their magnitudes are comparable across features.
        return normalise_importance(np.ravel(model.named_steps["model"].coef_), feature_names)


class RidgeFamily(_LinearFamily):
    name = "Ridge"
    default_params: dict[str, Any] = {"alpha": 10.0}

    def _estimator(self, params: dict[str, Any], seed: int) -> Ridge:
        params["random_state"] = int(seed)  # only used by the stochastic solvers (sag/saga)
        return Ridge(**params)


class ElasticNetFamily(_LinearFamily):
    name = "ElasticNet"
    default_params: dict[str, Any] = {"alpha": 1e-4, "l1_ratio": 0.5, "max_iter": 5000}

    def _estimator(self, params: dict[str, Any], seed: int) -> ElasticNet:
        params["random_state"] = int(seed)
        return ElasticNet(**params)
