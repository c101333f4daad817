"""The model loader: picks models by SQL over the catalog, and loads exactly what the catalog verified.

The catalog is the authority for what may load:

* A model is loaded only from its catalog row: the model directory, the plain file name and the sha256 the
  indexer computed. Whatever ``model_meta.json`` says now does not choose the file.
* Paths are confined to RESULTS: a directory or file that resolves elsewhere (``..``, an absolute path, a
  symlink) is refused.
* ``model_meta.json`` must still be the document the catalog indexed (its sha256), so its feature list,
  interval and family are the verified ones.
* The model file is read once; its bytes are hashed and must equal the catalog's checksum, which must equal the
  meta's ``model_checksum``; the model is built from those same bytes (no second open, no race). A file whose
  bytes differ is refused in every mode. ``strict=True`` also refuses a model whose meta recorded no checksum
  (contract rule 4), which the default loads with a warning (never a pickle-based format).
* The interval check is always on, against the live data's measured interval; the model must take as many
  features as its ``feature_list`` names.
* The inference path follows the meta (``live.inference``): ``input_mode`` (features or raw OHLCV windows, contract
  1.3) and an enabled ``cross_sectional_ranking`` block (1.4). A model kind the engine cannot serve is refused here,
  with the reason: a family that reads something else than the meta's ``input_mode`` says, a window the model file
  does not hold or that cannot be normalised, a ranking model without a cross-section (SYMBOL_SPECIFIC) or without
  skill (``best_ic <= 0``), a ranking family whose meta does not say it ranks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from catalog.query import connect
from contracts.families import family_spec
from contracts.model_meta import ModelMeta, parse_model_meta
from contracts.paths import MODEL_META
from live.inference import serving_path
from live.policies import DEFAULT_POLICY, alias_names, policy_sql
from ml.families import get_family
from ml.sequences import SequenceSpec

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
    checksum_status: str  # "ok" (verified) or "missing" (the meta recorded no checksum; non-strict only)

    sequence: SequenceSpec | None = None  # the raw OHLCV window it reads (input_mode raw_sequence)
    ranking: bool = False  # trained with a ranking objective: scores mean something within one timestamp only

    @property
    def key(self) -> str:
        sym = f"/{self.meta.symbol}" if self.meta.symbol else ""
        return f"{self.meta.target}/{self.meta.view}{sym}/{self.meta.family}"

    def predict(self, X) -> Any:
        return get_family(self.meta.family).predict(self.model, X)


@dataclass(frozen=True)
class CatalogModel:
    """What the catalog verified about one model directory (the loader trusts nothing else).

    Attributes:
        model_dir: relative to RESULTS.
        model_file: the model file's plain name in it.
        model_sha256: the file's sha256 when it was indexed.
        model_checksum: what the meta claims (``None``: a contract-1.0 meta recorded none).
        meta_sha256: the sha256 of the ``model_meta.json`` that was indexed.
    """

    model_dir: str
    model_file: str
    model_sha256: str
    model_checksum: str | None
    meta_sha256: str


def select_models(
    results: str | Path, policy: str = DEFAULT_POLICY, interval_minutes: float | None = None
) -> list[str]:
    """``model_dir`` values (relative to RESULTS) that a policy picks.

    ``policy``: a named policy (built in or from ``configs/policies.yaml``), ``alias:<name>[,<name>…]``, or a
    ``select`` returning ``model_dir``. An alias resolves to the model it points at now, whatever its interval
    (:func:`load_model` still refuses a model trained on another interval). Every directory a policy returns must be
    an indexed model.
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"selection policy failed: {first}") from None
    if "model_dir" not in cols:
        raise ValueError(f"a selection policy must return a model_dir column; got {cols}")
    dirs = [r[cols.index("model_dir")] for r in rows]
    unknown = sorted(set(dirs) - set(_catalog_rows(con, dirs)))
    if unknown:
        raise ValueError(f"selection policy returned model_dir(s) the catalog does not index: {unknown[:5]}")
    return dirs


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


def _catalog_rows(con, dirs: list[str]) -> dict[str, CatalogModel]:
    rows = con.execute(
        "select model_dir, model_file, model_sha256, model_checksum, meta_sha256 from models "
        "where model_dir in (select unnest($dirs))",
        {"dirs": [str(d) for d in dirs]},
    ).fetchall()
    return {r[0]: CatalogModel(*r) for r in rows}


@dataclass(frozen=True)
class ModelFiles:
    """Where a selected model's files are (confined to RESULTS)."""

    model_dir: Path
    meta_path: Path
    model_path: Path


def _selection(root: Path, policy: str, interval_minutes: float | None) -> tuple[list[str], dict[str, CatalogModel]]:
    """The model directories a policy picks and their catalog rows, from one catalog snapshot."""
    con = connect(root)
    try:
        dirs = _select(con, policy, interval_minutes)
        return dirs, _catalog_rows(con, dirs)
    finally:
        con.close()


def resolve_model_files(
    results: str | Path, policy: str = DEFAULT_POLICY, interval_minutes: float | None = None
) -> list[ModelFiles]:
    """The files of the models a policy or an alias picks (absolute paths), from one catalog snapshot."""
    root = Path(results)
    dirs, rows = _selection(root, policy, interval_minutes)
    out = []
    for d in dirs:
        directory = confined(root, d)
        out.append(ModelFiles(directory, directory / MODEL_META, confined(root, f"{d}/{rows[d].model_file}")))
    return out


def confined(results: str | Path, relative: str) -> Path:
    """``RESULTS/relative``, refusing a path that leaves RESULTS or passes through a symlink.

    Raises:
        ModelLoadError: naming the path.
    """
    root = Path(results).resolve()
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ModelLoadError(f"{relative}: not a path inside RESULTS ({root}); refused")
    path = root / rel
    if path.resolve() != path:
        raise ModelLoadError(f"{path}: resolves to {path.resolve()}, outside RESULTS or through a symlink; refused")
    return path


def _read_once(path: Path) -> bytes:
    """The file's bytes, opened once without following a symlink in its last component."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot be read ({exc.strerror}); refused") from None
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def load_model(
    results: str | Path, model_dir: str | Path, *, interval_minutes: float, strict: bool = False
) -> LoadedModel:
    """Load the indexed model in ``model_dir`` (relative to RESULTS, or a path inside it) as the catalog verified
    it: meta and model bytes checked against the catalog, interval and feature count checked, then built from the
    verified bytes."""
    root = Path(results)
    rel = Path(model_dir)
    if rel.is_absolute():
        try:
            rel = rel.resolve().relative_to(root.resolve())
        except ValueError:
            raise ModelLoadError(f"{model_dir}: not inside RESULTS ({root.resolve()}); refused") from None
    con = connect(root)
    try:
        row = _catalog_rows(con, [rel.as_posix()]).get(rel.as_posix())
    finally:
        con.close()
    if row is None:
        raise ModelLoadError(f"{root / rel}: not an indexed model (run `foxlake catalog index`); refused")
    return _load(root, row, interval_minutes=interval_minutes, strict=strict)


def _load(root: Path, row: CatalogModel, *, interval_minutes: float, strict: bool) -> LoadedModel:
    if interval_minutes is None or not isinstance(interval_minutes, int | float):
        raise ModelLoadError(
            f"{row.model_dir}: the live data's interval_minutes is required (got {interval_minutes!r})"
        )
    directory = confined(root, row.model_dir)
    meta_path = directory / MODEL_META
    meta_bytes = _read_once(meta_path)
    if hashlib.sha256(meta_bytes).hexdigest() != row.meta_sha256:
        raise ModelLoadError(f"{meta_path}: changed since it was indexed; re-index (`foxlake catalog index`); refused")
    try:
        meta = parse_model_meta(json.loads(meta_bytes), source=meta_path)
    except ValueError as exc:
        raise ModelLoadError(f"{meta_path}: {exc}") from None
    if meta.interval_minutes is None:
        raise ModelLoadError(
            f"{meta_path}: interval_minutes: unknown (a contract-1.0 meta); the interval cannot be "
            "checked against the live data, so the model is not loaded (model_meta rule 3)"
        )
    if abs(meta.interval_minutes - interval_minutes) > 1e-9:
        raise ModelLoadError(
            f"{directory}: trained on {meta.interval_minutes}-minute bars, live data is {interval_minutes}-minute"
        )
    path = confined(root, f"{row.model_dir}/{row.model_file}")
    data = _read_once(path)
    digest = hashlib.sha256(data).hexdigest()
    if digest != row.model_sha256:
        raise ModelLoadError(f"{path}: its bytes differ from the catalog's checksum (changed since indexed); refused")
    spec = family_spec(meta.family)
    if row.model_checksum is None:
        if strict or spec.framework in _PICKLE_FRAMEWORKS:
            raise ModelLoadError(f"{path}: model_meta has no model_checksum; refused (strict or pickle format)")
        log.warning("%s: no model_checksum in model_meta; loading the bytes the catalog hashed (rule 4)", path)
        status = "missing"
    elif row.model_checksum != digest:
        raise ModelLoadError(f"{path}: sha256 does not match model_meta's model_checksum; refused")
    else:
        status = "ok"
    family = get_family(meta.family)
    model = family.load_bytes(data)
    n_inputs = family.n_features(model)
    if n_inputs is not None and n_inputs != len(meta.feature_list):
        raise ModelLoadError(
            f"{path}: the model takes {n_inputs} features but model_meta.feature_list names {len(meta.feature_list)}"
        )
    try:
        sequence, ranking = serving_path(meta, family.sequence_spec(model))
    except ValueError as exc:
        raise ModelLoadError(f"{meta_path}: {exc}; the engine cannot serve it, refused") from None
    return LoadedModel(directory, meta, model, status, sequence, ranking)


def load_selected(
    results: str | Path, policy: str = DEFAULT_POLICY, *, interval_minutes: float, strict: bool = False
) -> tuple[list[LoadedModel], list[str]]:
    """Load every model the policy picks, from one catalog snapshot; the models and one error line per model
    refused."""
    root = Path(results)
    dirs, rows = _selection(root, policy, interval_minutes)
    loaded, errors = [], []
    for rel in dirs:
        try:
            loaded.append(_load(root, rows[rel], interval_minutes=interval_minutes, strict=strict))
        except Exception as exc:  # noqa: BLE001 - one bad model must not stop the others
            errors.append(str(exc))
            log.error("%s", exc)
    return loaded, errors


def catalog_facts(results: str | Path, models: list[LoadedModel]) -> dict[str, dict[str, Any]]:
    """Per loaded model (by ``key``): the catalog's ``holdout_ic`` (``mean_ic``), ``data_end`` (the last bar its
    run read, holdout included), ``research_only`` and ``model_dir`` (relative to RESULTS)."""
    root = Path(results).resolve()
    rel = {m.key: m.model_dir.resolve().relative_to(root).as_posix() for m in models}
    con = connect(root)
    try:
        rows = con.execute(
            "select model_dir, mean_ic, data_end, research_only from models where model_dir in (select unnest($dirs))",
            {"dirs": list(rel.values())},
        ).fetchall()
    finally:
        con.close()
    by_dir = {
        r[0]: {"holdout_ic": r[1], "data_end": r[2], "research_only": bool(r[3]), "model_dir": r[0]} for r in rows
    }
    missing = sorted(d for d in rel.values() if d not in by_dir)
    if missing:
        raise ModelLoadError(f"catalog: no row for {missing[:3]}")
    return {key: by_dir[d] for key, d in rel.items()}
