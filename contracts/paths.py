"""The path convention contract: every artifact path comes from these helpers, nowhere else.

::

    RESULTS/runs/<run_id>/<timestamp>/
        manifest.json
        globals/routing_decisions.json
        targets/<target>/decision/routing_decision.json
        targets/<target>/models/view=<view>/routing_decision.json
        targets/<target>/models/view=<view>/[symbol=<SYM>/]family=<family>/model_meta.json, model.<ext>, ...

SYMBOL_SPECIFIC models sit one level deeper, under ``symbol=<SYM>/``, below ``view=SYMBOL_SPECIFIC/``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from contracts.families import canonical_family, model_filename

RESULTS_ENV = "FOXLAKE_RESULTS"
MANIFEST = "manifest.json"
MODEL_META = "model_meta.json"
ROUTING_DECISION = "routing_decision.json"
GLOBAL_ROUTING = "routing_decisions.json"
FINGERPRINTS = "fingerprints.json"
REPRODUCIBILITY = "reproducibility.json"
CATALOG_FILE = "catalog.duckdb"

VIEWS = ("CROSS_SECTIONAL", "SYMBOL_SPECIFIC")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def results_root(override: str | Path | None = None) -> Path:
    """The RESULTS folder: ``override``, else ``$FOXLAKE_RESULTS``, else ``./RESULTS``."""
    if override is not None:
        return Path(override)
    return Path(os.environ.get(RESULTS_ENV) or "RESULTS")


def _check_name(kind: str, value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"{kind} {value!r} is not a valid path component (letters, digits, _ . - only)")
    return value


def check_view(view: str) -> str:
    """Validate a view name (``CROSS_SECTIONAL`` or ``SYMBOL_SPECIFIC``)."""
    if view not in VIEWS:
        raise ValueError(f"view {view!r} is not one of {VIEWS}")
    return view


def get_run_dir(results: str | Path, run_id: str, timestamp: str) -> Path:
    """``RESULTS/runs/<run_id>/<timestamp>``."""
    return Path(results) / "runs" / _check_name("run_id", run_id) / _check_name("timestamp", timestamp)


def get_manifest_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / MANIFEST


def get_globals_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "globals"


def get_global_routing_path(run_dir: str | Path) -> Path:
    return get_globals_dir(run_dir) / GLOBAL_ROUTING


def get_target_dir(run_dir: str | Path, target: str) -> Path:
    """``<run_dir>/targets/<target>``; target names use underscores (``fwd_ret_15m``)."""
    return Path(run_dir) / "targets" / _check_name("target", target)


def get_target_routing_path(run_dir: str | Path, target: str) -> Path:
    return get_target_dir(run_dir, target) / "decision" / ROUTING_DECISION


def get_scoped_artifact_dir(
    run_dir: str | Path,
    target: str,
    view: str | None = None,
    family: str | None = None,
    symbol: str | None = None,
) -> Path:
    """The directory of an artifact scoped to target, view, symbol and family.

    ``symbol`` is required for (and only allowed with) ``view="SYMBOL_SPECIFIC"`` when a family is
    given; the family is written in its canonical spelling.
    """
    path = get_target_dir(run_dir, target) / "models"
    if view is None:
        if family is not None or symbol is not None:
            raise ValueError("family/symbol scope needs a view")
        return path
    path = path / f"view={check_view(view)}"
    if symbol is not None:
        if view != "SYMBOL_SPECIFIC":
            raise ValueError(f"symbol={symbol} is only valid under view=SYMBOL_SPECIFIC, not {view}")
        path = path / f"symbol={_check_name('symbol', symbol)}"
    elif family is not None and view == "SYMBOL_SPECIFIC":
        raise ValueError("a SYMBOL_SPECIFIC model directory needs its symbol")
    if family is not None:
        path = path / f"family={canonical_family(family)}"
    return path


def get_view_routing_path(run_dir: str | Path, target: str, view: str) -> Path:
    return get_scoped_artifact_dir(run_dir, target, view) / ROUTING_DECISION


def get_model_path(model_dir: str | Path, family: str) -> Path:
    """``<model_dir>/model.<ext>`` for the family's native format."""
    return Path(model_dir) / model_filename(family)


def parse_model_dir(model_dir: str | Path) -> dict[str, str | None]:
    """Read target, view, symbol and family back out of a model directory path.

    Raises:
        ValueError: the path does not follow the convention.
    """
    parts = Path(model_dir).parts
    try:
        i = len(parts) - 1 - parts[::-1].index("models")
    except ValueError:
        raise ValueError(f"{model_dir}: no 'models' level in path") from None
    tail = parts[i + 1 :]
    out: dict[str, str | None] = {"target": parts[i - 1], "view": None, "symbol": None, "family": None}
    for part in tail:
        key, sep, value = part.partition("=")
        if not sep or key not in ("view", "symbol", "family"):
            raise ValueError(f"{model_dir}: unexpected path level {part!r}")
        out[key] = value
    if i < 2 or parts[i - 2] != "targets":
        raise ValueError(f"{model_dir}: expected .../targets/<target>/models/...")
    keys = [p.partition("=")[0] for p in tail]
    if keys not in ([], ["view"], ["view", "family"], ["view", "symbol"], ["view", "symbol", "family"]):
        raise ValueError(f"{model_dir}: levels must be view=, [symbol=,] family= in that order; got {keys}")
    if out["view"] is not None:
        check_view(out["view"])
    if out["symbol"] is not None and out["view"] != "SYMBOL_SPECIFIC":
        raise ValueError(f"{model_dir}: symbol= is only valid under view=SYMBOL_SPECIFIC")
    if out["family"] is not None and canonical_family(out["family"]) != out["family"]:
        raise ValueError(f"{model_dir}: family={out['family']} is not the canonical spelling")
    return out
