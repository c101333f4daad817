"""The interface every model family implements: fit, predict, save in its native format, load."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from contracts.families import family_spec


class ModelFamily(ABC):
    """One model family. ``name`` is the canonical family name; files use the family's native extension."""

    name: str
    default_params: dict[str, Any] = {}

    @property
    def extension(self) -> str:
        return family_spec(self.name).extension

    def params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Default hyper-parameters with ``overrides`` applied."""
        return {**self.default_params, **(overrides or {})}

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray, feature_names: list[str], params: dict[str, Any], seed: int) -> Any:
        """Train on float64 ``X`` (rows × features, NaN allowed only where the family handles it)."""

    @abstractmethod
    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        """Scores for the rows of ``X``, columns in the model's feature_list order."""

    @abstractmethod
    def save(self, model: Any, path: Path) -> None:
        """Write the model to ``path`` in the native format."""

    def load(self, path: Path) -> Any:
        """Read a model written by :meth:`save` (training and tests; live trading loads verified bytes)."""
        return self.load_bytes(Path(path).read_bytes())

    @abstractmethod
    def load_bytes(self, data: bytes) -> Any:
        """A model from the bytes of a file :meth:`save` wrote. Live trading hashes the bytes it read once, checks
        them against the catalog, and loads exactly those: what was verified is what runs."""

    def importance(self, model: Any, feature_names: list[str]) -> dict[str, float]:
        """Feature importance normalised to sum to 1 (empty when the family has none)."""
        return {}

    def n_features(self, model: Any) -> int | None:
        """How many input columns the fitted model takes (``None`` when the format does not say)."""
        return None


def normalise_importance(values: np.ndarray, names: list[str]) -> dict[str, float]:
    values = np.abs(np.asarray(values, dtype=float))
    total = values.sum()
    if total <= 0:
        return {n: 0.0 for n in names}
    return {n: float(v / total) for n, v in zip(names, values, strict=True)}
