"""The steps of one training run as library calls, each reading and writing files of the run directory.

Training assets are thin wrappers over these; so are tests and the CLI. A run directory is
``RESULTS/runs/<run_id>/<run_instance_id>/`` and ``manifest.json`` is always written last.
"""

from __future__ import annotations

import io
import subprocess
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from contracts.io import read_json, write_atomic_bytes, write_atomic_json
from contracts.manifest import check_target_coverage, parse_manifest
from contracts.model_meta import CONTRACT_VERSION, load_model_meta
from contracts.paths import (
    MODEL_META,
    get_global_routing_path,
    get_globals_dir,
    get_manifest_path,
    get_scoped_artifact_dir,
    get_target_routing_path,
    get_view_routing_path,
)
from contracts.routing import parse_routing
from ml.config import RunConfig
from ml.features import ALL_FEATURES, is_target_like, resolve
from ml.lake import partitions, read_table, table_dir
from ml.ranking import TargetEvaluation, evaluate_target
from ml.routing import route_target
from ml.training import ModelJob, train_and_write

RANKING_JSON = "target_ranking.json"
RANKING_PARQUET = "target_ranking.parquet"
JOBS_JSON = "model_jobs.json"
REUSE_JSON = "reused_from.json"


def run_instance_id(created: datetime, dagster_run_id: str | None = None) -> str:
    """``YYYYmmddTHHMMSSZ`` of the run's creation, plus the first 8 characters of the Dagster run id."""
    stamp = created.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}_{dagster_run_id[:8]}" if dagster_run_id else stamp


def git_sha(cwd: str | Path | None = None) -> str:
    """The repository's HEAD commit, or ``"unknown"`` outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


# --- data -------------------------------------------------------------------------------------------


def load_panel(results: str | Path, cfg: RunConfig) -> tuple[pl.DataFrame, list[str], list[str]]:
    """The features+targets table of the run's interval, its feature columns and its date partitions."""
    directory = table_dir(results, "features", cfg.interval_minutes)
    panel = read_table(directory)
    features = resolve(cfg.features if cfg.features is not None else [c for c in panel.columns if c in ALL_FEATURES])
    missing = [t for t in cfg.target_names() if t not in panel.columns]
    if missing:
        raise KeyError(f"{directory}: target column(s) {missing} missing; re-materialize the features asset")
    assert not any(is_target_like(f) for f in features)
    return panel, features, partitions(directory)


# --- ranking ----------------------------------------------------------------------------------------


def rank_targets(panel: pl.DataFrame, features: list[str], cfg: RunConfig) -> list[TargetEvaluation]:
    """Evaluate every configured target (pooled view and per symbol), best first by CS IC_IR."""
    evaluations = [
        evaluate_target(
            panel,
            features,
            spec.name(cfg.interval_minutes),
            spec.horizon_bars,
            spec.reach_bars,
            cfg.ranking_family,
            cfg.ranking_params,
            cfg.cv,
            cfg.seed,
        )
        for spec in cfg.targets
    ]
    return sorted(evaluations, key=lambda e: -e.cs["IC_IR"])


def write_ranking(run_dir: Path, evaluations: list[TargetEvaluation]) -> Path:
    """``globals/target_ranking.parquet`` (one row a target) and ``.json`` (with per-symbol metrics)."""
    rows = [{"rank": i + 1, **e.to_row()} for i, e in enumerate(evaluations)]
    path = get_globals_dir(run_dir) / RANKING_PARQUET
    buf = io.BytesIO()
    pl.DataFrame(rows).write_parquet(buf)
    write_atomic_bytes(path, buf.getvalue())
    write_atomic_json(get_globals_dir(run_dir) / RANKING_JSON, [asdict(e) for e in evaluations])
    return path


def read_ranking(run_dir: Path) -> list[TargetEvaluation]:
    return [TargetEvaluation(**d) for d in read_json(get_globals_dir(run_dir) / RANKING_JSON)]


# --- routing ----------------------------------------------------------------------------------------


def decide_routes(evaluations: list[TargetEvaluation], cfg: RunConfig) -> dict[str, dict[str, Any]]:
    return {e.target: route_target(e, cfg.routing) for e in evaluations}


def write_routing(run_dir: Path, decisions: dict[str, dict[str, Any]]) -> list[Path]:
    """Routing decisions globally, per target and per trained view (validated before writing)."""
    parse_routing(decisions)
    written = [write_atomic_json(get_global_routing_path(run_dir), decisions)]
    for target, d in sorted(decisions.items()):
        written.append(write_atomic_json(get_target_routing_path(run_dir, target), {target: d}))
        for view in parse_routing({target: d}).root[target].views():
            written.append(write_atomic_json(get_view_routing_path(run_dir, target, view), {target: d}))
    return written


def read_routing(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = get_global_routing_path(run_dir)
    parse_routing(read_json(path), source=str(path))
    return read_json(path)


def reuse_upstream(src_run_dir: Path, dst_run_dir: Path) -> bool:
    """Copy ranking and routing artifacts of an earlier run into this one; returns False if same run."""
    if src_run_dir.resolve() == dst_run_dir.resolve():
        return False
    src_globals = get_globals_dir(src_run_dir)
    for name in (RANKING_JSON, RANKING_PARQUET):
        if (src_globals / name).exists():
            write_atomic_bytes(get_globals_dir(dst_run_dir) / name, (src_globals / name).read_bytes())
    write_routing(dst_run_dir, read_routing(src_run_dir))
    write_atomic_json(get_globals_dir(dst_run_dir) / REUSE_JSON, {"reused_from": str(src_run_dir)})
    return True


# --- models -----------------------------------------------------------------------------------------


def plan_model_jobs(decisions: dict[str, dict[str, Any]], cfg: RunConfig) -> list[ModelJob]:
    """Every (target, view, family[, symbol]) the routing decisions ask for."""
    jobs = []
    for target, d in sorted(decisions.items()):
        spec = cfg.target_spec(target)
        views = parse_routing({target: d}).root[target].views()
        for view in views:
            symbols = (d.get("winner_symbols") or []) if view == "SYMBOL_SPECIFIC" else [None]
            for symbol in symbols:
                for family in cfg.families:
                    jobs.append(ModelJob(target, view, family, symbol, spec.horizon_bars, spec.reach_bars))
    return jobs


def model_dir_for(run_dir: Path, job: ModelJob) -> Path:
    return get_scoped_artifact_dir(run_dir, job.target, job.view, job.family, job.symbol)


def train_models(
    panel: pl.DataFrame,
    features: list[str],
    jobs: list[ModelJob],
    run_dir: Path,
    cfg: RunConfig,
    provenance: dict[str, Any],
) -> list[dict[str, Any]]:
    """Train every job; a failing job is recorded (``status: failed`` with the error), never fatal."""
    outcomes = []
    for job in jobs:
        directory = model_dir_for(run_dir, job)
        record = {**asdict(job), "model_dir": str(directory.relative_to(run_dir))}
        try:
            meta = train_and_write(
                panel,
                features,
                job,
                directory,
                interval_minutes=cfg.interval_minutes,
                params=cfg.family_params.get(job.family, {}),
                cv=cfg.cv,
                seed=cfg.seed,
                provenance=provenance,
            )
            record.update(status="trained", mean_IC=meta.metrics.mean_IC, IC_IR=meta.metrics.IC_IR)
        except Exception as exc:  # noqa: BLE001 - one family failing must not lose the run
            record.update(
                status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=5)
            )
        outcomes.append(record)
    write_atomic_json(get_globals_dir(run_dir) / JOBS_JSON, outcomes)
    return outcomes


# --- manifest ---------------------------------------------------------------------------------------


def write_manifest(run_dir: Path, cfg: RunConfig, run_metadata: dict[str, Any]) -> dict[str, Any]:
    """Build ``manifest.json`` from the model directories and job outcomes on disk, and write it last."""
    jobs_path = get_globals_dir(run_dir) / JOBS_JSON
    outcomes = read_json(jobs_path) if jobs_path.exists() else []
    decisions = read_routing(run_dir)
    metas = [load_model_meta(p) for p in sorted(run_dir.glob(f"targets/*/models/**/{MODEL_META}"))]
    target_index: dict[str, Any] = {}
    for target in sorted({o["target"] for o in outcomes} | {m.target for m in metas}):
        mine = [m for m in metas if m.target == target]
        planned = [o for o in outcomes if o["target"] == target]
        failed = [o for o in planned if o["status"] != "trained"]
        status = "failed" if not mine else "partial" if failed else "complete"
        views = sorted({m.view for m in mine} | {o["view"] for o in planned})
        target_index[target] = {
            "status": status,
            "families_trained": sorted({m.family for m in mine}),
            "view": "CROSS_SECTIONAL" if "CROSS_SECTIONAL" in views else views[0],
            "views": views,
            "route": decisions.get(target, {}).get("route"),
            "auc": None,
            "best_mean_IC": max((m.metrics.mean_IC for m in mine), default=None),
            "n_models": len(mine),
            "failed_jobs": [f"{o['view']}/{o['family']}/{o['symbol'] or '-'}: {o['error']}" for o in failed],
        }
    reuse = get_globals_dir(run_dir) / REUSE_JSON
    doc = {
        "run_id": cfg.run_id,
        "run_instance_id": run_dir.name,
        "timestamp": datetime.now(UTC).isoformat(),
        "git_sha": run_metadata.pop("git_sha", None) or git_sha(),
        "target_index": target_index,
        "config_digest": cfg.digest(),
        "is_comparable": True,
        "experiment_config": cfg.model_dump(mode="json"),
        "run_metadata": {
            **run_metadata,
            "interval_minutes": cfg.interval_minutes,
            "blocked_targets": sorted(t for t, d in decisions.items() if d["route"] == "BLOCKED"),
            "reused_from": read_json(reuse)["reused_from"] if reuse.exists() else None,
        },
        "contract_version": CONTRACT_VERSION,
    }
    manifest = parse_manifest(doc, source=str(get_manifest_path(run_dir)))
    check_target_coverage(manifest, {m.target for m in metas})
    write_atomic_json(get_manifest_path(run_dir), doc)
    return doc
