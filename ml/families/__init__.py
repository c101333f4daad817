"""Model families by canonical name (looked up case-insensitively).

Each family's module (and its library: torch, catboost, …) is imported when the family is first asked for, so a
process that uses two families does not pay for six."""

from __future__ import annotations

import importlib

from contracts.families import FAMILIES, canonical_family
from ml.families.base import ModelFamily

_REGISTRY: dict[str, tuple[str, str]] = {
    name: tuple(spec.implementation.split(":", 1))  # type: ignore[misc]
    for name, spec in FAMILIES.items()
    if spec.implementation
}
"""Canonical name -> (module, class), from the one registry (``contracts.families.FAMILIES``)."""


def family_class(name: str) -> type[ModelFamily]:
    """The class of the family called ``name`` (any case)."""
    canonical = canonical_family(name)
    try:
        module, cls = _REGISTRY[canonical]
    except KeyError:
        raise KeyError(f"family {canonical!r} has no implementation yet; available: {sorted(_REGISTRY)}") from None
    found = getattr(importlib.import_module(module), cls)
    if found.name != canonical:
        raise RuntimeError(f"{module}.{cls} names itself {found.name!r}, registered as {canonical!r}")
    return found


def get_family(name: str) -> ModelFamily:
    """An instance of the family called ``name`` (any case)."""
    return family_class(name)()


def family_modules(names: set[str] | list[str]) -> set[str]:
    """The modules that implement the families called ``names`` (any case; unknown names are skipped)."""
    return {_REGISTRY[n][0] for n in (canonical_family(x) for x in names) if n in _REGISTRY}


def available_families() -> list[str]:
    return sorted(_REGISTRY)


__all__ = ["ModelFamily", "available_families", "family_class", "family_modules", "get_family"]
