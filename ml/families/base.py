"""The interface every model family implements: fit, predict, save in its native format, load.

A family reads one of two inputs (``input_mode``, contract 1.3): rows of the feature table (``X`` is rows ×
features) or raw OHLCV windows (``X`` is windows × bars × channels, normalised by :mod:`ml.sequences`). Its objective
is pointwise (a score per row) or a ranking over timestamp groups (contract 1.4): ``fit`` then receives ``groups``,
one id per row (the row's timestamp), and only the order of the scores within one group means anything.
"""

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
    input_mode: str = "features"
    """``features`` (the feature table) or ``raw_sequence`` (OHLCV windows)."""

    @property
    def extension(self) -> str:
        return family_spec(self.name).extension

    def params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Default hyper-parameters with ``overrides`` applied."""
        return {**self.default_params, **(overrides or {})}

    @abstractmethod
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: list[str],
        params: dict[str, Any],
        seed: int,
        groups: np.ndarray | None = None,
    ) -> Any:
        """Train on float64 ``X`` (rows × features, NaN allowed only where the family handles it). ``groups`` holds
        each row's timestamp id; a ranking objective groups by it, a pointwise one ignores it."""

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

    def ranking_loss(self, params: dict[str, Any]) -> str | None:
        """The ranking objective ``params`` train with (the meta's ``cross_sectional_ranking.loss_type``), or
        ``None`` for a pointwise objective."""
        return None

    def sequence_spec(self, model: Any) -> Any:
        """The :class:`ml.sequences.SequenceSpec` a raw-sequence model was fitted on (``None`` for a feature model)."""
        return None

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
