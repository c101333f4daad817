"""Turn the files of one *unit* into catalog rows, validating every document through ``contracts``.

A unit is what the indexer re-reads as a whole when any of its files changes:

* a model directory (a directory holding ``model_meta.json``) with every file in it;
* one ``manifest.json`` (a run);
* one routing file (``globals/routing_decisions.json``, ``targets/<t>/decision/routing_decision.json`` or
  ``targets/<t>/models/view=<V>/routing_decision.json``).

Nothing here raises for a bad document: a file that breaks a contract becomes a ``rejected`` row with its
reason. These functions run in worker processes too, so they take and return plain values.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from typing import Any

from contracts.errors import ContractError
from contracts.families import canonical_family, model_filename
from contracts.manifest import parse_manifest
from contracts.model_meta import ContractWarning, parse_model_meta
from contracts.paths import (
    FINGERPRINTS,
    GLOBAL_ROUTING,
    MANIFEST,
    MODEL_META,
    REPRODUCIBILITY,
    ROUTING_DECISION,
    parse_model_dir,
)
from contracts.routing import parse_routing

# File kinds (codes are stored in the state file; names in ``artifacts.kind``).
K_MANIFEST, K_ROUTING, K_META, K_MODEL, K_REPRO, K_FINGERPRINTS, K_EXTRA = 1, 2, 3, 4, 5, 6, 7
KIND_NAMES = {
    K_MANIFEST: "manifest",
    K_ROUTING: "routing_decision",
    K_META: "model_meta",
    K_MODEL: "model",
    K_REPRO: "reproducibility",
    K_FINGERPRINTS: "fingerprints",
    K_EXTRA: "model_extra",
}
MODEL_KINDS = frozenset({K_META, K_MODEL, K_REPRO, K_FINGERPRINTS, K_EXTRA})
_BIG_FILE = 8 << 20  # files above this are hashed in chunks and never held in memory

# One file as read: (relative path, kind code, size, mtime_ns, inode, sha256 or None when unreadable).
FileRec = tuple[str, int, int, int, int, str | None]


def classify(name: str, in_model_dir: bool) -> int:
    """The kind code of a file called ``name`` (0: not indexed)."""
    if name == MANIFEST:
        return K_MANIFEST
    if name in (ROUTING_DECISION, GLOBAL_ROUTING):
        return K_ROUTING
    if name == MODEL_META:
        return K_META
    if not in_model_dir or name.startswith("."):
        return 0
    if name == REPRODUCIBILITY:
        return K_REPRO
    if name == FINGERPRINTS:
        return K_FINGERPRINTS
    if name.startswith("model."):
        return K_MODEL
    return K_EXTRA


def run_dir_of(rel: str) -> str | None:
    """``runs/<run_id>/<run_instance_id>`` of a path under RESULTS, or None when it is not that deep."""
    parts = rel.split("/")
    return "/".join(parts[:3]) if len(parts) > 3 and parts[0] == "runs" else None


def _reason(exc: BaseException) -> tuple[str, str, str]:
    """(reason, field, rule) of an exception raised while reading a document."""
    if isinstance(exc, ContractError):
        return f"{exc.field or '<document>'}: [{exc.rule}] {exc.detail}", exc.field, exc.rule
    if isinstance(exc, UnicodeDecodeError):
        return f"<document>: [json] not UTF-8 text: {exc}", "", "json"
    if isinstance(exc, json.JSONDecodeError):
        return f"<document>: [json] not valid JSON: {exc}", "", "json"
    return f"<document>: [{type(exc).__name__}] {exc}", "", type(exc).__name__


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (canonical JSON has no NaN or Infinity)")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # json.loads(…, parse_constant=) builds one a call


def _load_json(data: bytes) -> tuple[Any, str]:
    """(document, text) of a JSON file's bytes; NaN/Infinity refused as canonical JSON does."""
    text = data.decode("utf-8")
    try:
        return _DECODER.decode(text), text
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise
        raise ContractError("", "json", str(exc)) from None


def read_file(path: str, keep: bool, dir_fd: int | None = None) -> tuple[os.stat_result, bytes | None, str]:
    """(stat of the opened file, its bytes when ``keep`` and not huge, sha256 hex); ``path`` relative to
    ``dir_fd`` when given."""
    fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if st.st_size > _BIG_FILE:
            digest = hashlib.sha256()
            while chunk := os.read(fd, 1 << 20):
                digest.update(chunk)
            return st, None, digest.hexdigest()
        data = os.read(fd, st.st_size + 1)
        if len(data) > st.st_size:  # grew while we read: take all of it
            parts = [data]
            while chunk := os.read(fd, 1 << 20):
                parts.append(chunk)
            data = b"".join(parts)
    finally:
        os.close(fd)
    return st, (data if keep else None), hashlib.sha256(data).hexdigest()


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _num(value: Any) -> float | None:
    """A finite JSON number, else None (a NaN or an infinity must never win a ranking)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63 else None


def infer_contract_version(doc: dict) -> str:
    """The declared ``contract_version``, else the oldest contract version the document's fields fit."""
    declared = doc.get("contract_version")
    if isinstance(declared, str) and declared:
        return declared
    if "cross_sectional_ranking" in doc:
        return "1.4"
    if "input_mode" in doc or "sequence_length" in doc:
        return "1.3"
    if "feature_list" in doc and "interval_minutes" in doc and "model_checksum" in doc:
        return "1.1"
    return "1.0"


# --- model directories --------------------------------------------------------------------------------------------

# Columns produced in Python for ``models`` (the JSON sub-documents are extracted from meta_json in SQL).
MODEL_COLUMNS = (
    "model_dir", "run_dir", "run_id", "run_instance_id", "target", "view", "symbol", "family", "interval_minutes",
    "n_features", "mean_ic", "mean_rank_ic", "ic_ir", "t_stat", "metric_kind", "cv_mean", "cv_std",
    "n_rows_train", "n_rows_val", "input_mode", "model_path", "model_checksum", "checksum_ok", "contract_version",
    "meta_json", "route", "model_file", "checksum_status", "model_sha256", "model_size", "hit_rate", "rank_ic_ir",
    "sequence_length", "sequence_normalization", "cs_ranking_enabled",
    "cs_ranking_target_type", "cs_ranking_loss_type", "cs_ranking_sequence_length", "cs_ranking_normalization",
    "cs_ranking_best_ic", "cs_ranking_best_spread", "cs_ranking_epochs_trained", "cs_ranking_ic_ir",
    "cs_ranking_ic_hit_rate", "cs_ranking_turnover", "cs_ranking_net_spread", "legacy_features", "horizon_bars",
    "evaluated_on", "holdout_start", "holdout_end", "ic_coverage", "spread_bps", "turnover_frac", "net_spread_bps",
    "breakeven_cost_bps", "cost_bps", "cv_mean_ic", "cv_mean_rank_ic", "cv_ic_ir", "cv_t_stat", "cv_net_spread_bps",
    "research_only", "fit_scope",
    "meta_path", "meta_sha256", "repro_json",
)  # fmt: skip
# The LIST columns (feature_list, cv_scores, sequence_channels, data_partitions) and the lineage read from
# reproducibility.json are extracted from the JSON texts in SQL, in bulk (see catalog.indexer).


# metrics.<name> -> the models columns after holdout_end, in MODEL_COLUMNS order
_COST_AND_CV_METRICS = (
    "ic_coverage", "spread_bps", "turnover_frac", "net_spread_bps", "breakeven_cost_bps", "cost_bps", "cv_mean_IC",
    "cv_mean_RankIC", "cv_IC_IR", "cv_t_stat", "cv_net_spread_bps",
)  # fmt: skip

_VIEW_LEVELS = {"view=CROSS_SECTIONAL": "CROSS_SECTIONAL", "view=SYMBOL_SPECIFIC": "SYMBOL_SPECIFIC"}


def _fast_where(parts: list[str]) -> dict[str, str | None] | None:
    """parse_model_dir's answer for a well-formed directory, without pathlib (None: ask parse_model_dir)."""
    n = len(parts)
    if n not in (8, 9) or parts[0] != "runs" or parts[3] != "targets" or parts[5] != "models":
        return None
    view = _VIEW_LEVELS.get(parts[6])
    fam = parts[-1]
    if view is None or not fam.startswith("family="):
        return None
    family = fam[7:]
    try:
        if canonical_family(family) != family:
            return None
    except KeyError:
        return None
    symbol = None
    if n == 9:
        if view != "SYMBOL_SPECIFIC" or not parts[7].startswith("symbol=") or len(parts[7]) == 7:
            return None
        symbol = parts[7][7:]
    return {"target": parts[4], "view": view, "symbol": symbol, "family": family}


def _check_location(model_dir: str, meta, doc: dict) -> tuple[str, str, str]:
    """Validate the path convention against the document; returns (run_dir, view, symbol)."""
    parts = model_dir.split("/")
    where = _fast_where(parts)
    if where is not None:
        return _match_location(parts, where, meta, doc)
    if len(parts) < 7 or parts[0] != "runs" or parts[3] != "targets" or parts[5] != "models":
        raise ContractError(
            "", "path convention", "a model directory is runs/<run_id>/<run_instance_id>/targets/<target>/models/"
            "view=<view>/[symbol=<symbol>/]family=<family>",
        )  # fmt: skip
    try:
        where = parse_model_dir(model_dir)
    except (ValueError, KeyError) as exc:
        raise ContractError("", "path convention", str(exc).replace(model_dir + ": ", "")) from None
    if where["view"] is None or where["family"] is None:
        raise ContractError("", "path convention", "a model directory ends in view=<view>/[symbol=<s>/]family=<f>")
    if where["view"] == "SYMBOL_SPECIFIC" and where["symbol"] is None:
        raise ContractError("symbol", "path convention", "a SYMBOL_SPECIFIC model lives under symbol=<SYM>/")
    return _match_location(parts, where, meta, doc)


def _match_location(parts: list[str], where: dict, meta, doc: dict) -> tuple[str, str, str]:
    view = meta.view or meta.route or where["view"]
    mismatch = [
        f"{k}: path {p!r}, model_meta {m!r}"
        for k, p, m in (
            ("family", where["family"], meta.family),
            ("target", where["target"], meta.target),
            ("view", where["view"], view),
            ("symbol", where["symbol"], meta.symbol),
            ("run_id", parts[1], doc.get("run_id", parts[1])),
            ("run_instance_id", parts[2], doc.get("run_instance_id", parts[2])),
        )
        if p != m
    ]
    if mismatch:
        raise ContractError(mismatch[0].split(":")[0], "path convention", "; ".join(mismatch))
    return "/".join(parts[:3]), view, where["symbol"]


def process_model_dir(
    root: str, model_dir: str, names: list[tuple[str, int]] | None = None
) -> tuple[list[FileRec], tuple | None, tuple | None]:
    """Read one model directory: (its files, a ``models`` row or None, a ``rejected`` row or None).

    ``names``: the directory's (file name, kind) pairs when a walk just listed them. Returns no files when the
    directory or its ``model_meta.json`` is gone (the unit was deleted).
    """
    base = f"{root}/{model_dir}"
    if names is None:
        try:
            with os.scandir(base) as it:
                listed = [e.name for e in it if e.is_file()]
        except (FileNotFoundError, NotADirectoryError):
            return [], None, None
        except OSError as exc:
            return [], None, (f"{model_dir}/{MODEL_META}", "model_meta", f"<directory>: [os] {exc}", "", "os")
        if MODEL_META not in listed:
            return [], None, None
        names = [(n, k) for n in listed if (k := classify(n, True)) in MODEL_KINDS]
    files: list[FileRec] = []
    data: dict[str, bytes | None] = {}
    sha: dict[str, str | None] = {}
    size: dict[str, int] = {}
    try:  # the files are opened relative to the directory: one path lookup instead of one a file
        dir_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return [], None, None
    except OSError as exc:
        return [], None, (f"{model_dir}/{MODEL_META}", "model_meta", f"<directory>: [os] {exc}", "", "os")
    try:
        for name, kind in names:
            try:
                st, raw, digest = read_file(name, keep=kind in (K_META, K_REPRO), dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except OSError:
                st, raw, digest = None, None, None
                try:
                    st = os.stat(name, dir_fd=dir_fd)
                except OSError:
                    continue
            files.append((f"{model_dir}/{name}", kind, st.st_size, st.st_mtime_ns, st.st_ino, digest))
            data[name], sha[name], size[name] = raw, digest, st.st_size
    finally:
        os.close(dir_fd)
    meta_path = f"{model_dir}/{MODEL_META}"
    if not any(f[0] == meta_path for f in files):
        return files, None, None  # vanished between the listing and the read
    try:
        row = _model_row(model_dir, meta_path, data, sha, size)
    except Exception as exc:  # noqa: BLE001 - every failure is a rejection, never an abort
        reason, field, rule = _reason(exc)
        return files, None, (meta_path, "model_meta", reason, field, rule)
    return files, row, None


def _model_row(model_dir: str, meta_path: str, data: dict, sha: dict, size: dict) -> tuple:
    raw = data.get(MODEL_META)
    if raw is None:
        raise ContractError("", "os", "model_meta.json could not be read")
    doc, text = _load_json(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ContractWarning)
        meta = parse_model_meta(doc)
    run_dir, view, symbol = _check_location(model_dir, meta, doc)
    model_file = meta.model_file or model_filename(meta.family)
    if "/" in model_file or model_file in (".", "..") or model_file == MODEL_META:
        raise ContractError("model_file", "model files rule 1", f"{model_file!r} is not a file name in the directory")
    if model_file not in sha:
        raise ContractError("model_file", "model files rule 1", f"model file {model_file!r} does not exist")
    actual = sha[model_file]
    if meta.model_checksum is None:
        status = "missing"
    else:
        status = "ok" if actual == meta.model_checksum else "mismatch"
    m = meta.metrics
    extra = m.model_extra or {}
    csr = meta.cross_sectional_ranking
    tm = csr.training_metrics if csr is not None else None
    repro = data.get(REPRODUCIBILITY)
    try:
        repro_text = repro.decode("utf-8") if repro is not None else None
    except UnicodeDecodeError:
        repro_text = None  # lineage is best effort: the model itself is valid
    return (
        model_dir, run_dir, _str(doc.get("run_id")), _str(doc.get("run_instance_id")), meta.target, view, symbol,
        meta.family, meta.interval_minutes, meta.n_features, m.mean_IC, m.mean_RankIC, m.IC_IR,
        _num(extra.get("t_stat")), _str(extra.get("metric_kind")), meta.cv_mean, meta.cv_std, meta.n_rows_train,
        meta.n_rows_val, meta.input_mode, f"{model_dir}/{model_file}", meta.model_checksum, status == "ok",
        infer_contract_version(doc), text, meta.route, model_file, status, actual, size[model_file],
        _num(extra.get("hit_rate")), _num(extra.get("RankIC_IR")), meta.sequence_length,
        meta.sequence_normalization, csr.enabled if csr else None,
        csr.target_type if csr else None, csr.loss_type if csr else None, csr.sequence_length if csr else None,
        csr.normalization if csr else None, tm.best_ic if tm else None, tm.best_spread if tm else None,
        tm.epochs_trained if tm else None, tm.ic_ir if tm else None, tm.ic_hit_rate if tm else None,
        tm.turnover if tm else None, tm.net_spread if tm else None, "feature_list" not in doc and "features" in doc,
        _int(doc.get("horizon_bars")),
        _str(extra.get("evaluated_on")), _str(extra.get("holdout_start")), _str(extra.get("holdout_end")),
        *(_num(extra.get(k)) for k in _COST_AND_CV_METRICS),
        meta.research_only, meta.fit_scope,
        meta_path, sha[MODEL_META], repro_text,
    )  # fmt: skip


# --- manifests --------------------------------------------------------------------------------------------------

RUN_COLUMNS = (
    "run_dir", "run_id", "run_instance_id", "timestamp", "git_sha", "config_digest", "dagster_run_id",
    "interval_minutes", "n_targets", "complete", "reused_from", "manifest_json", "is_comparable", "contract_version",
    "manifest_path", "manifest_sha256",
)  # fmt: skip
RUN_TARGET_COLUMNS = (
    "run_dir", "target", "status", "families_trained", "view", "auc", "route", "n_models", "best_mean_ic",
    "entry_json",
)  # fmt: skip


def _read_unit_file(root: str, rel: str, kind: int) -> tuple[FileRec | None, bytes | None]:
    try:
        st, raw, digest = read_file(f"{root}/{rel}", keep=True)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None, None
    except OSError:
        try:
            st = os.stat(f"{root}/{rel}")
        except OSError:
            return None, None
        return (rel, kind, st.st_size, st.st_mtime_ns, st.st_ino, None), None
    return (rel, kind, st.st_size, st.st_mtime_ns, st.st_ino, digest), raw


def process_manifest(root: str, rel: str) -> tuple[FileRec | None, tuple | None, list[tuple], tuple | None]:
    """(file, ``runs`` row, ``run_targets`` rows, ``rejected`` row) of one manifest.json."""
    rec, raw = _read_unit_file(root, rel, K_MANIFEST)
    if rec is None:
        return None, None, [], None
    try:
        parts = rel.split("/")
        if len(parts) != 4 or parts[0] != "runs":
            raise ContractError("", "path convention", "manifest.json belongs at runs/<run_id>/<run_instance_id>/")
        if raw is None:
            raise ContractError("", "os", "manifest.json could not be read")
        doc, text = _load_json(raw)
        man = parse_manifest(doc)
        if (man.run_id, man.run_instance_id) != (parts[1], parts[2]):
            raise ContractError(
                "run_id", "path convention",
                f"manifest names run {man.run_id}/{man.run_instance_id} but lives in {parts[1]}/{parts[2]}",
            )  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        reason, field, rule = _reason(exc)
        return rec, None, [], (rel, "manifest", reason, field, rule)
    run_dir = "/".join(parts[:3])
    meta = man.run_metadata or {}
    entries = man.target_index
    row = (
        run_dir, man.run_id, man.run_instance_id, man.timestamp, man.git_sha, man.config_digest,
        _str(meta.get("dagster_run_id")), _num(meta.get("interval_minutes")), len(entries),
        bool(entries) and all(e.status == "complete" for e in entries.values()), _str(meta.get("reused_from")),
        text, man.is_comparable, man.contract_version, rel, rec[5],
    )  # fmt: skip
    targets = []
    for target, e in sorted(entries.items()):
        x = e.model_extra or {}
        targets.append((
            run_dir, target, e.status, e.families_trained, e.view, e.auc, _str(x.get("route")),
            _int(x.get("n_models")), _num(x.get("best_mean_IC")), json.dumps(doc["target_index"][target],
                                                                                  sort_keys=True),
        ))  # fmt: skip
    return rec, row, targets, None


# --- routing decisions ------------------------------------------------------------------------------------------

ROUTING_COLUMNS = (
    "path", "run_dir", "scope", "target", "view", "route", "reason", "skill01_cs", "skill01_sym_mean",
    "frac_symbols_good", "winner_symbols", "n_symbols_evaluated", "decision_json", "auc",
)  # fmt: skip


def routing_scope(rel: str) -> tuple[str, str | None] | None:
    """(scope, view) of a routing file from its path, or None when it sits where no routing file belongs."""
    parts = rel.split("/")
    if len(parts) < 5 or parts[0] != "runs":
        return None
    tail = parts[3:]
    if tail == ["globals", GLOBAL_ROUTING]:
        return "global", None
    if len(tail) == 4 and tail[0] == "targets" and tail[2:] == ["decision", ROUTING_DECISION]:
        return "target", None
    if len(tail) == 5 and tail[0] == "targets" and tail[2] == "models" and tail[4] == ROUTING_DECISION:
        if tail[3] in ("view=CROSS_SECTIONAL", "view=SYMBOL_SPECIFIC"):
            return "view", tail[3].removeprefix("view=")
    return None


def process_routing(root: str, rel: str) -> tuple[FileRec | None, list[tuple], tuple | None]:
    """(file, ``routing_decisions`` rows, ``rejected`` row) of one routing file."""
    rec, raw = _read_unit_file(root, rel, K_ROUTING)
    if rec is None:
        return None, [], None
    try:
        where = routing_scope(rel)
        if where is None:
            raise ContractError(
                "", "path convention", "routing files live at globals/routing_decisions.json, "
                "targets/<t>/decision/routing_decision.json or targets/<t>/models/view=<V>/routing_decision.json",
            )  # fmt: skip
        if raw is None:
            raise ContractError("", "os", "the routing file could not be read")
        doc, _ = _load_json(raw)
        decisions = parse_routing(doc)
    except Exception as exc:  # noqa: BLE001
        reason, field, rule = _reason(exc)
        return rec, [], (rel, "routing_decision", reason, field, rule)
    scope, view = where
    run_dir = run_dir_of(rel)
    rows = [
        (
            rel,
            run_dir,
            scope,
            target,
            view,
            d.route,
            d.reason,
            d.skill01_cs,
            d.skill01_sym_mean,
            d.frac_symbols_good,
            d.winner_symbols,
            d.n_symbols_evaluated,
            json.dumps(doc[target], sort_keys=True),
            d.auc,
        )  # fmt: skip
        for target, d in sorted(decisions.root.items())
    ]
    return rec, rows, None
