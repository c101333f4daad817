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
        implementation: where its code is, ``module:Class`` (a ``ml.families.base.ModelFamily``), imported the
            first time the family is used (``ml.families.family_class``); ``None``: a name the contracts know that
            this project does not train.
    """

    name: str
    extension: str
    framework: str
    input_mode: str = "features"
    objective: str = "pointwise"
    implementation: str | None = None

    def is_ranking(self, params: dict | None = None) -> bool:
        """Whether the family trains with a ranking objective under ``params`` (its hyper-parameters)."""
        if self.objective == "loss":
            return (params or {}).get("loss", POINTWISE_LOSS) in RANKING_LOSSES
        return self.objective == "ranking"


POINTWISE_LOSS = "mse"
"""The torch families' pointwise loss, their default ``loss`` hyper-parameter."""
RANKING_LOSSES = ("pairwise_logistic", "listwise_softmax")
"""The torch families' ranking losses (``loss`` hyper-parameter)."""


_ML = "ml.families."
FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        FamilySpec("LightGBM", ".txt", "lightgbm", implementation=_ML + "lightgbm_family:LightGBMFamily"),
        FamilySpec("XGBoost", ".json", "xgboost", implementation=_ML + "xgboost_family:XGBoostFamily"),
        FamilySpec("CatBoost", ".cbm", "catboost", implementation=_ML + "catboost_family:CatBoostFamily"),
        FamilySpec("Ridge", ".joblib", "sklearn", implementation=_ML + "linear_family:RidgeFamily"),
        FamilySpec("ElasticNet", ".joblib", "sklearn", implementation=_ML + "linear_family:ElasticNetFamily"),
        FamilySpec(
            "LightGBMRanker", ".txt", "lightgbm", "features", "ranking", _ML + "ranker_family:LightGBMRankerFamily"
        ),
        FamilySpec(
            "XGBoostRanker", ".json", "xgboost", "features", "ranking", _ML + "ranker_family:XGBoostRankerFamily"
        ),
        FamilySpec("MLP", ".pt", "torch", implementation=_ML + "mlp_family:MLPFamily"),
        FamilySpec("LSTM", ".pt", "torch", "raw_sequence", "loss", _ML + "sequence_family:LSTMFamily"),
        FamilySpec("Transformer", ".pt", "torch", "raw_sequence", "loss", _ML + "sequence_family:TransformerFamily"),
        FamilySpec("CSRanker", ".pt", "torch", objective="ranking"),
    )
}
"""The one registry of model families: add a family here (its spec and where its class is) and nowhere else."""
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
