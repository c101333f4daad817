"""The model loader: picks models by SQL over the catalog, verifies each checksum, then loads it.

* Checksum verified for every format before the file is read; ``strict=True`` refuses a mismatch or a
  missing checksum, the default warns and records it. Pickle-based formats (``.joblib``) are never
  loaded on a mismatch, strict or not.
* The interval check is always on: a model trained on another bar interval is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from catalog.query import connect
from contracts.families import family_spec
from contracts.io import sha256_file
from contracts.model_meta import ModelMeta, load_model_meta
from contracts.paths import MODEL_META
from live.policies import DEFAULT_POLICY, alias_names, policy_sql
from ml.families import get_family

log = logging.getLogger("foxlake.live.loader")
_PICKLE_FRAMEWORKS = {"sklearn"}


class ModelLoadError(RuntimeError):
    """A selected model cannot be used; the message names the file and why."""


@dataclass
class LoadedModel:
    """A model ready for inference."""

    model_dir: Path
    meta: ModelMeta
    model: Any
    checksum_status: str  # "ok", "missing" or "mismatch"

    @property
    def key(self) -> str:
        sym = f"/{self.meta.symbol}" if self.meta.symbol else ""
        return f"{self.meta.target}/{self.meta.view}{sym}/{self.meta.family}"

    def predict(self, X) -> Any:
        return get_family(self.meta.family).predict(self.model, X)


def select_models(
    results: str | Path, policy: str = DEFAULT_POLICY, interval_minutes: float | None = None
) -> list[str]:
    """``model_dir`` values (relative to RESULTS) that a policy picks.

    ``policy``: a named policy (built in or from ``configs/policies.yaml``), ``alias:<name>[,<name>…]``, or a
    ``select`` returning ``model_dir``. An alias resolves to the model it points at now, whatever its interval
    (:func:`load_model` still refuses a model trained on another interval).
    """
    con = connect(results)
    try:
        return _select(con, policy, interval_minutes)
    finally:
        con.close()


def _select(con, policy: str, interval_minutes: float | None) -> list[str]:
    names = alias_names(policy)
    if names is not None:
        return _resolve_aliases(con, names)
    query = policy_sql(policy)
    try:
        params = {"interval_minutes": interval_minutes} if "$interval_minutes" in query else None
        if params and interval_minutes is None:
            raise ValueError("this policy needs the live data's interval_minutes")
        rows = con.execute(query, params or {}).fetchall()
        cols = [d[0] for d in con.description]
    except duckdb.Error as exc:
        raise ValueError(f"selection policy failed: {exc}") from None
    if "model_dir" not in cols:
        raise ValueError(f"a selection policy must return a model_dir column; got {cols}")
    return [r[cols.index("model_dir")] for r in rows]


def _resolve_aliases(con, names: list[str]) -> list[str]:
    rows = dict(
        con.execute(
            "select alias, model_dir from aliases where active and alias in (select unnest($names))",
            {"names": names},
        ).fetchall()
    )
    missing = [n for n in names if n not in rows]
    if missing:
        raise ValueError(f"alias(es) not set: {missing}; set one with `foxlake catalog alias set NAME MODEL_DIR`")
    return list(dict.fromkeys(rows[n] for n in names))


@dataclass(frozen=True)
class ModelFiles:
    """Where a selected model's files are."""

    model_dir: Path
    meta_path: Path
    model_path: Path | None  # as indexed (None when the catalog does not list it)


def resolve_model_files(
    results: str | Path, policy: str = DEFAULT_POLICY, interval_minutes: float | None = None
) -> list[ModelFiles]:
    """The files of the models a policy or an alias picks (absolute paths), from one catalog snapshot."""
    root = Path(results)
    con = connect(results)
    try:
        dirs = _select(con, policy, interval_minutes)
        paths = dict(
            con.execute(
                "select model_dir, model_path from models where model_dir in (select unnest($dirs))", {"dirs": dirs}
            ).fetchall()
        )
    finally:
        con.close()
    return [ModelFiles(root / d, root / d / MODEL_META, root / paths[d] if paths.get(d) else None) for d in dirs]


def load_model(model_dir: Path, *, interval_minutes: float, strict: bool = False) -> LoadedModel:
    """Validate the meta, check the interval against the live data's (measured) one, verify the checksum, then
    load the native file and check that it takes as many features as ``feature_list`` names."""
    meta = load_model_meta(model_dir / MODEL_META)
    if interval_minutes is None or not isinstance(interval_minutes, int | float):
        raise ModelLoadError(f"{model_dir}: the live data's interval_minutes is required (got {interval_minutes!r})")
    if meta.interval_minutes is None:
        raise ModelLoadError(
            f"{model_dir / MODEL_META}: interval_minutes: unknown (a contract-1.0 meta); the interval cannot be "
            "checked against the live data, so the model is not loaded (model_meta rule 3)"
        )
    if abs(meta.interval_minutes - interval_minutes) > 1e-9:
        raise ModelLoadError(
            f"{model_dir}: trained on {meta.interval_minutes}-minute bars, live data is {interval_minutes}-minute"
        )
    spec = family_spec(meta.family)
    path = model_dir / (meta.model_file or ("model" + spec.extension))
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file missing (model files rule 1)")
    if meta.model_checksum is None:
        status = "missing"
        if strict or spec.framework in _PICKLE_FRAMEWORKS:
            raise ModelLoadError(f"{path}: model_meta has no model_checksum; refused (strict or pickle format)")
        log.warning("%s: no model_checksum in model_meta; loading unverified (rule 4)", path)
    elif sha256_file(path) != meta.model_checksum:
        status = "mismatch"
        if strict or spec.framework in _PICKLE_FRAMEWORKS:
            raise ModelLoadError(f"{path}: sha256 does not match model_checksum; refused")
        log.warning("%s: sha256 does not match model_checksum; loading anyway (non-strict)", path)
    else:
        status = "ok"
    family = get_family(meta.family)
    model = family.load(path)
    n_inputs = family.n_features(model)
    if n_inputs is not None and n_inputs != len(meta.feature_list):
        raise ModelLoadError(
            f"{path}: the model takes {n_inputs} features but model_meta.feature_list names {len(meta.feature_list)}"
        )
    return LoadedModel(model_dir, meta, model, status)


def load_selected(
    results: str | Path, policy: str = DEFAULT_POLICY, *, interval_minutes: float, strict: bool = False
) -> tuple[list[LoadedModel], list[str]]:
    """Load every model the policy picks; returns the models and one error line per model refused."""
    loaded, errors = [], []
    for rel in select_models(results, policy, interval_minutes):
        try:
            loaded.append(load_model(Path(results) / rel, strict=strict, interval_minutes=interval_minutes))
        except Exception as exc:  # noqa: BLE001 - one bad model must not stop the others
            errors.append(str(exc))
            log.error("%s", exc)
    return loaded, errors
