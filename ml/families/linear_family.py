"""Linear families (Ridge, ElasticNet): a scikit-learn pipeline median-impute (:class:`MedianImputer`) →
standardise → model, saved whole with joblib (``model.joblib``): the fitted imputer and scaler travel inside the one
file its checksum covers (no separate, unverified pickles).
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
from sklearn.utils._mask import _get_mask

from ml.families.base import ModelFamily, normalise_importance


class MedianImputer(SimpleImputer):
    """``SimpleImputer(strategy="median")`` whose fit takes each column's median with one vectorised sort of all columns
    instead of a masked-array sort: the same values, ~10x faster on the ranking's 24 × 3,000-row folds, where the
    imputer's fit was half of each linear fit (sklearn's own median path: ``SimpleImputer._dense_fit``)."""

    def __init__(self, *, keep_empty_features: bool = True) -> None:
        super().__init__(strategy="median", keep_empty_features=keep_empty_features)

    def _dense_fit(self, X, strategy, missing_values, fill_value):  # noqa: ANN001, ANN202 - sklearn's signature
        missing = _get_mask(X, missing_values)
        self._fit_indicator(missing)
        present = (~missing).sum(axis=0)
        ordered = np.sort(np.where(missing, np.inf, X), axis=0)  # each column's values first, in order
        cols = np.arange(X.shape[1])
        lo = ordered[np.maximum(present - 1, 0) // 2, cols]
        hi = ordered[present // 2, cols] if X.shape[0] else lo
        median = np.where(present > 0, (lo + hi) / 2.0, 0.0 if self.keep_empty_features else np.nan)
        return median


def _finite(X: np.ndarray) -> np.ndarray:
    """Float64 copy of ``X`` with ±inf treated as missing (NaN), which the imputer then fills."""
    X = np.asarray(X, dtype=float)
    return np.where(np.isfinite(X), X, np.nan)


class _LinearFamily(ModelFamily):
    """Shared pipeline handling; subclasses build the estimator from the params."""

    def _estimator(self, params: dict[str, Any], seed: int) -> Any:
        raise NotImplementedError

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: list[str],
        params: dict[str, Any],
        seed: int,
        groups: np.ndarray | None = None,
    ) -> Pipeline:
        pipeline = Pipeline(
            [
                # keep_empty_features: an all-NaN column stays (imputed to 0) so coef_ lines up with feature_names.
                ("imputer", MedianImputer(keep_empty_features=True)),
                ("scaler", StandardScaler()),
                ("model", self._estimator(dict(params), seed)),
            ]
        )
        pipeline.fit(_finite(X), np.asarray(y, dtype=float))
        return pipeline

    def predict(self, model: Pipeline, X: np.ndarray) -> np.ndarray:
        """``model.predict`` computed from its fitted steps: impute, standardise, ``X @ coef + intercept`` (the same
        arithmetic without sklearn's per-step input checks, which cost ~2 ms a call on the live engine's 500 rows;
        ``tests/test_families.py`` checks it against the pipeline)."""
        imputer, scaler, estimator = (model.named_steps[k] for k in ("imputer", "scaler", "model"))
        X = _finite(X)
        if X.ndim != 2 or X.shape[1] != imputer.statistics_.shape[0]:
            raise ValueError(f"X has shape {X.shape}; the model reads {imputer.statistics_.shape[0]} features")
        X = np.where(np.isnan(X), imputer.statistics_, X)
        if scaler.with_mean:
            X = X - scaler.mean_
        if scaler.with_std:
            X = X / scaler.scale_
        return np.asarray(X @ np.ravel(estimator.coef_) + estimator.intercept_, dtype=float).reshape(-1)

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
