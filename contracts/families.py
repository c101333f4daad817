"""Canonical model family names, looked up case-insensitively, and each family's model file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FamilySpec:
    """A model family as the contracts know it.

    Attributes:
        name: canonical spelling, used in paths (``family=<name>``) and in model_meta.
        extension: the native model file extension, with the dot.
        framework: the library that reads and writes that file.
        input_mode: what the family reads: ``features`` (feature-table rows) or ``raw_sequence`` (OHLCV windows).
        objective: ``pointwise`` (a score per row), ``ranking`` (always a ranking objective over timestamp groups)
            or ``loss`` (chosen by the ``loss`` hyper-parameter: ``mse``, ``pairwise_logistic``, ``listwise_softmax``).
    """

    name: str
    extension: str
    framework: str
    input_mode: str = "features"
    objective: str = "pointwise"

    def is_ranking(self, params: dict | None = None) -> bool:
        """Whether the family trains with a ranking objective under ``params`` (its hyper-parameters)."""
        if self.objective == "loss":
            return (params or {}).get("loss", POINTWISE_LOSS) in RANKING_LOSSES
        return self.objective == "ranking"


POINTWISE_LOSS = "mse"
"""The torch families' pointwise loss, their default ``loss`` hyper-parameter."""
RANKING_LOSSES = ("pairwise_logistic", "listwise_softmax")
"""The torch families' ranking losses (``loss`` hyper-parameter)."""


FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        FamilySpec("LightGBM", ".txt", "lightgbm"),
        FamilySpec("XGBoost", ".json", "xgboost"),
        FamilySpec("CatBoost", ".cbm", "catboost"),
        FamilySpec("Ridge", ".joblib", "sklearn"),
        FamilySpec("ElasticNet", ".joblib", "sklearn"),
        FamilySpec("LightGBMRanker", ".txt", "lightgbm", objective="ranking"),
        FamilySpec("XGBoostRanker", ".json", "xgboost", objective="ranking"),
        FamilySpec("MLP", ".pt", "torch"),
        FamilySpec("LSTM", ".pt", "torch", input_mode="raw_sequence", objective="loss"),
        FamilySpec("Transformer", ".pt", "torch", input_mode="raw_sequence", objective="loss"),
        FamilySpec("CSRanker", ".pt", "torch", objective="ranking"),
    )
}
_BY_LOWER = {name.lower(): name for name in FAMILIES}


def canonical_family(name: str) -> str:
    """The canonical spelling of a family name (``"lightgbm"`` → ``"LightGBM"``).

    Raises:
        KeyError: the name is not a known family; the message lists the known ones.
    """
    try:
        return _BY_LOWER[name.strip().lower()]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


def family_spec(name: str) -> FamilySpec:
    """The :class:`FamilySpec` of a family, by any spelling."""
    return FAMILIES[canonical_family(name)]


def model_filename(family: str) -> str:
    """The model file name for a family: ``model`` plus its native extension."""
    return "model" + family_spec(family).extension
