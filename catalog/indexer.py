"""Build the catalog from the files under RESULTS (the record); the catalog is only an index.

A build writes a fresh DuckDB file beside the live one and swaps it in with ``os.replace``: readers
that hold the old file keep their snapshot, new readers open the new file, nobody waits for a lock.
Every document is validated through ``contracts``; a bad one lands in ``rejected`` with its reason.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from catalog.schema import SCHEMA_VERSION, TABLES, VIEWS
from contracts.errors import ContractError
from contracts.io import read_json, sha256_file
from contracts.manifest import parse_manifest
from contracts.model_meta import parse_model_meta
from contracts.paths import (
    CATALOG_FILE,
    GLOBAL_ROUTING,
    MANIFEST,
    MODEL_META,
    ROUTING_DECISION,
    parse_model_dir,
)
from contracts.routing import parse_routing


def catalog_path(results: str | Path) -> Path:
    """``RESULTS/catalog.duckdb``."""
    return Path(results) / CATALOG_FILE


@dataclass
class IndexReport:
    """What one index build saw."""

    runs: int = 0
    models: int = 0
    routing_decisions: int = 0
    rejected: int = 0
    path: str = ""


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _run_dir_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts  # runs/<run_id>/<instance>/...
    return "/".join(parts[:3])


def _collect(root: Path, con: duckdb.DuckDBPyConnection, report: IndexReport) -> None:
    runs_dir = root / "runs"
    rejected: list[tuple[str, str, str]] = []

    def reject(path: Path, kind: str, err: Exception) -> None:
        rejected.append((_rel(path, root), kind, str(err)))

    for mpath in sorted(runs_dir.glob("*/*/" + MANIFEST)):
        try:
            doc = read_json(mpath)
            man = parse_manifest(doc, source=str(mpath))
        except (ContractError, ValueError) as exc:
            reject(mpath, "manifest", exc)
            continue
        run_dir = _rel(mpath.parent, root)
        meta = man.run_metadata or {}
        con.execute(
            "insert into runs values (?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                run_dir,
                man.run_id,
                man.run_instance_id,
                man.timestamp,
                man.git_sha,
                man.config_digest,
                meta.get("dagster_run_id"),
                meta.get("interval_minutes"),
                len(man.target_index),
                all(e.status == "complete" for e in man.target_index.values()) and bool(man.target_index),
                meta.get("reused_from"),
                json.dumps(doc, sort_keys=True),
            ],
        )
        for target, entry in sorted(man.target_index.items()):
            con.execute(
                "insert into run_targets values (?,?,?,?,?,?)",
                [run_dir, target, entry.status, entry.families_trained, entry.view, entry.auc],
            )
        report.runs += 1

    for meta_path in sorted(runs_dir.glob("*/*/targets/*/models/**/" + MODEL_META)):
        model_dir = meta_path.parent
        try:
            doc = read_json(meta_path)
            meta = parse_model_meta(doc, source=str(meta_path))
            where = parse_model_dir(model_dir)
            if where["family"] != meta.family or where["target"] != meta.target or where["view"] != meta.view:
                raise ContractError(
                    "family",
                    "path convention",
                    f"path says {where} but model_meta says family={meta.family}, "
                    f"target={meta.target}, view={meta.view}",
                )
        except (ContractError, ValueError) as exc:
            reject(meta_path, "model_meta", exc)
            continue
        model_file = model_dir / (meta.model_file or "")
        if not meta.model_file or not model_file.is_file():
            reject(
                meta_path,
                "model_meta",
                ContractError("model_file", "model files rule 1", f"model file {model_file.name!r} does not exist"),
            )
            continue
        checksum_ok = meta.model_checksum is not None and sha256_file(model_file) == meta.model_checksum
        m = meta.metrics.model_dump()
        con.execute(
            "insert into models values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                _rel(model_dir, root),
                _run_dir_of(model_dir, root),
                doc.get("run_id"),
                doc.get("run_instance_id"),
                meta.target,
                meta.view,
                meta.symbol,
                meta.family,
                meta.interval_minutes,
                meta.feature_list,
                meta.n_features,
                m["mean_IC"],
                m["mean_RankIC"],
                m["IC_IR"],
                m.get("t_stat"),
                m.get("metric_kind"),
                meta.cv_mean,
                meta.cv_std,
                meta.n_rows_train,
                meta.n_rows_val,
                meta.input_mode,
                _rel(model_file, root),
                meta.model_checksum,
                checksum_ok,
                meta.contract_version,
                json.dumps(doc, sort_keys=True),
            ],
        )
        report.models += 1

    routing_files = [(p, "global") for p in runs_dir.glob(f"*/*/globals/{GLOBAL_ROUTING}")]
    routing_files += [(p, "target") for p in runs_dir.glob(f"*/*/targets/*/decision/{ROUTING_DECISION}")]
    routing_files += [(p, "view") for p in runs_dir.glob(f"*/*/targets/*/models/view=*/{ROUTING_DECISION}")]
    for path, scope in sorted(routing_files):
        try:
            doc = read_json(path)
            decisions = parse_routing(doc, source=str(path))
        except (ContractError, ValueError) as exc:
            reject(path, "routing_decision", exc)
            continue
        view = path.parent.name.removeprefix("view=") if scope == "view" else None
        for target, d in sorted(decisions.root.items()):
            con.execute(
                "insert into routing_decisions values (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    _rel(path, root),
                    _run_dir_of(path, root),
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
                ],
            )
            report.routing_decisions += 1

    for row in rejected:
        con.execute("insert into rejected values (?,?,?)", list(row))
    report.rejected = len(rejected)


def build_catalog(results: str | Path) -> IndexReport:
    """Index everything under ``results`` into ``results/catalog.duckdb``, swapping the file in atomically."""
    root = Path(results).resolve()
    target = catalog_path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".catalog.", suffix=".duckdb", dir=root)
    os.close(fd)
    os.unlink(tmp_name)  # DuckDB creates the file itself
    report = IndexReport(path=str(target))
    try:
        con = duckdb.connect(tmp_name)
        try:
            con.execute(TABLES)
            con.execute("insert into meta values ('schema_version', ?)", [str(SCHEMA_VERSION)])
            con.execute("begin")
            _collect(root, con, report)
            con.execute("commit")
            con.execute(VIEWS)
            con.execute("checkpoint")
        finally:
            con.close()
        os.replace(tmp_name, target)
    finally:
        for leftover in (tmp_name, tmp_name + ".wal"):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return report
