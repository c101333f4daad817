"""Model families by canonical name (looked up case-insensitively)."""

from __future__ import annotations

from contracts.families import canonical_family
from ml.families.base import ModelFamily
from ml.families.catboost_family import CatBoostFamily
from ml.families.lightgbm_family import LightGBMFamily
from ml.families.linear_family import ElasticNetFamily, RidgeFamily
from ml.families.mlp_family import MLPFamily
from ml.families.xgboost_family import XGBoostFamily

_REGISTRY: dict[str, type[ModelFamily]] = {
    cls.name: cls for cls in (LightGBMFamily, XGBoostFamily, CatBoostFamily, RidgeFamily, ElasticNetFamily, MLPFamily)
}


def get_family(name: str) -> ModelFamily:
    """An instance of the family called ``name`` (any case)."""
    canonical = canonical_family(name)
    try:
        return _REGISTRY[canonical]()
    except KeyError:
        raise KeyError(f"family {canonical!r} has no implementation yet; available: {sorted(_REGISTRY)}") from None


def available_families() -> list[str]:
    return sorted(_REGISTRY)


__all__ = ["ModelFamily", "available_families", "get_family"]
