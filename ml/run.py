"""The steps of one training run as library calls, each reading and writing files of the run directory.

Training assets are thin wrappers over these; so are tests and the CLI. A run directory is
``RESULTS/runs/<run_id>/<run_instance_id>/`` and ``manifest.json`` is always written last.
"""

from __future__ import annotations

import io
import subprocess
import threading
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from contracts.families import family_spec
from contracts.io import read_json, write_atomic_bytes, write_atomic_json
from contracts.manifest import check_target_coverage, parse_manifest
from contracts.model_meta import CONTRACT_VERSION, load_model_meta
from contracts.paths import (
    MODEL_META,
    get_global_routing_path,
    get_globals_dir,
    get_manifest_path,
    get_scoped_artifact_dir,
    get_target_dir,
    get_target_routing_path,
    get_view_routing_path,
)
from contracts.routing import parse_routing
from ml.config import RunConfig
from ml.cv import Holdout, holdout_from_record, make_holdout
from ml.features import ALL_FEATURES, is_target_like, resolve
from ml.lake import partitions, read_table, table_dir
from ml.parallel import thread_map
from ml.progress import StageCounter, TrainingProgress
from ml.ranking import TargetEvaluation, evaluate_target
from ml.routing import route_target
from ml.selection import select_for_target
from ml.targets import TargetSpec, add_targets, target_end_column
from ml.training import ModelJob, train_and_write

RANKING_JSON = "target_ranking.json"
RANKING_PARQUET = "target_ranking.parquet"
SELECTION_JSON = "feature_selection.json"
SELECTED_FEATURES = "selected_features.json"
JOBS_DIR = "jobs"
REUSE_JSON = "reused_from.json"
HOLDOUT_JSON = "holdout.json"
WINDOW_JSON = "data_window.json"


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


def progress_for(results: str | Path, cfg: RunConfig, run_dir: Path) -> TrainingProgress:
    return TrainingProgress(results, cfg.run_id, run_dir.name)


# --- data -------------------------------------------------------------------------------------------


def load_panel(
    results: str | Path, cfg: RunConfig, run_dir: Path | None = None
) -> tuple[pl.DataFrame, list[str], list[str]]:
    """Features of the run's interval joined with its targets (computed from the bars, which they look ahead in),
    the feature columns, and the date partitions the data came from.

    With ``train_window_days`` only the newest that many partitions are read. Given ``run_dir``, the window's first
    day is pinned by the first step that reads it (``globals/data_window.json``) and every later step of the run
    starts there too, even after new days landed meanwhile."""
    interval = cfg.bar_interval_minutes
    feat_dir = table_dir(results, "features", interval)
    dates = partitions(feat_dir)
    since = _window_start(dates, cfg, run_dir)
    panel = read_table(feat_dir, since=since)
    bars = read_table(table_dir(results, "bars", interval), since=since)
    wanted = cfg.features if cfg.features is not None else [c for c in panel.columns if c in ALL_FEATURES]
    features = resolve(wanted)
    missing = [f for f in features if f not in panel.columns]
    if missing:
        raise KeyError(f"{feat_dir}: feature column(s) {missing} missing; re-materialize the features asset")
    panel = add_targets(panel.select("ts", "symbol", "close", *features), bars, cfg.targets, interval)
    if any(family_spec(f).input_mode == "raw_sequence" for t in cfg.target_names() for f in cfg.families_for(t)):
        ohlcv = [c for c in ("open", "high", "low", "volume", "vwap") if c in bars.columns]  # what they read
        panel = panel.join(bars.select("ts", "symbol", *ohlcv), on=["ts", "symbol"], how="left")
    assert not any(is_target_like(f) for f in features)
    return panel, features, [d for d in dates if since is None or d >= since]


def _window_start(dates: list[str], cfg: RunConfig, run_dir: Path | None) -> str | None:
    path = get_globals_dir(run_dir) / WINDOW_JSON if run_dir is not None else None
    if path is not None and path.exists():
        return read_json(path)["since"]
    n = cfg.train_window_days
    since = dates[-n] if n and len(dates) > n else None
    if path is not None:
        write_atomic_json(path, {"since": since, "train_window_days": n})
    return since


# --- the holdout -------------------------------------------------------------------------------------


def holdout_of(panel: pl.DataFrame, cfg: RunConfig) -> Holdout:
    """The run's holdout on the panel's bar grid (``cfg.holdout``)."""
    return make_holdout(panel["ts"], cfg.holdout)


def write_holdout(run_dir: Path, holdout: Holdout) -> Path:
    """``globals/holdout.json``: the window the ranking kept out; the models of the run use the same one."""
    return write_atomic_json(get_globals_dir(run_dir) / HOLDOUT_JSON, holdout.describe())


def read_holdout(run_dir: Path, panel: pl.DataFrame) -> Holdout:
    """The holdout the run's ranking recorded, on the panel's (possibly longer) grid.

    Raises:
        FileNotFoundError: the run's ranking recorded none (it ranked before holdouts existed, so it may have read
            any bar): its models cannot be scored honestly; re-materialize ``target_ranking``.
    """
    path = get_globals_dir(run_dir) / HOLDOUT_JSON
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: the run's ranking recorded no holdout, so no bar is known to be unseen by its decisions; "
            "re-materialize target_ranking"
        )
    return holdout_from_record(panel["ts"], read_json(path))


# --- ranking ----------------------------------------------------------------------------------------


def rank_targets(
    panel: pl.DataFrame,
    features: list[str],
    cfg: RunConfig,
    progress: TrainingProgress | None = None,
    holdout: Holdout | None = None,
) -> list[TargetEvaluation]:
    """Evaluate every configured target on the development data (pooled view and per symbol, each ranking family),
    best first by the cross-sectional t-stat (non-overlapping timestamps, so long horizons are not flattered).
    The holdout (``holdout``, default :func:`holdout_of`) is never read."""
    holdout = holdout or holdout_of(panel, cfg)
    names = cfg.target_names()
    counter = StageCounter(progress, "ranking", len(names))

    def one(spec: TargetSpec) -> TargetEvaluation:
        name = spec.name(cfg.bar_interval_minutes)
        heartbeat = (
            (
                lambda msg: progress.progress(  # noqa: E731
                    "ranking", counter.done, len(names), current_target=name, force=False, message=msg
                )
            )
            if progress
            else None
        )
        ev = evaluate_target(
            holdout.development(panel, target_end_column(name)),
            features,
            name,
            spec.horizon_bars,
            spec.reach_bars,
            list(cfg.ranking_families),
            cfg.ranking_params,
            cfg.cv,
            cfg.seed,
            on_step=heartbeat,
            evaluation=cfg.evaluation,
            ret=spec.base_name(cfg.bar_interval_minutes),
            symbol_params=cfg.symbol_ranking_params,
        )
        counter.complete(name)
        return ev

    if progress:
        progress.progress("ranking", 0, len(names))
    out = thread_map(one, cfg.targets, cfg.workers)
    return sorted(out, key=lambda e: (-e.cs["t_stat"], e.target))


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


# --- feature selection --------------------------------------------------------------------------------


def select_features(panel: pl.DataFrame, evaluations: list[TargetEvaluation], cfg: RunConfig) -> dict[str, Any]:
    """``{target: {view: selection}}`` from the ranking's importance consensus."""
    return {e.target: select_for_target(panel, e, cfg.selection, cfg.seed) for e in evaluations}


def write_selection(run_dir: Path, selections: dict[str, Any]) -> list[Path]:
    """Per target ``targets/<t>/feature_selection/selected_features.json`` and a global summary."""
    written = []
    for target, views in sorted(selections.items()):
        written.append(
            write_atomic_json(get_target_dir(run_dir, target) / "feature_selection" / SELECTED_FEATURES, views)
        )
    summary = {t: {v: s["selected"] for v, s in views.items()} for t, views in selections.items()}
    written.append(write_atomic_json(get_globals_dir(run_dir) / SELECTION_JSON, summary))
    return written


def read_selection(run_dir: Path) -> dict[str, dict[str, list[str]]]:
    """``{target: {view: selected feature list}}``."""
    return read_json(get_globals_dir(run_dir) / SELECTION_JSON)


# --- routing ----------------------------------------------------------------------------------------


def decide_routes(evaluations: list[TargetEvaluation], cfg: RunConfig) -> dict[str, dict[str, Any]]:
    return {e.target: route_target(e, cfg.routing) for e in evaluations}


def write_routing(run_dir: Path, decisions: dict[str, dict[str, Any]]) -> list[Path]:
    """Routing decisions globally, per target and per trained view (validated before writing)."""
    parsed = parse_routing(decisions).root
    written = [write_atomic_json(get_global_routing_path(run_dir), decisions)]
    for target, d in sorted(decisions.items()):
        written.append(write_atomic_json(get_target_routing_path(run_dir, target), {target: d}))
        for view in parsed[target].views():
            written.append(write_atomic_json(get_view_routing_path(run_dir, target, view), {target: d}))
    return written


def read_routing(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = get_global_routing_path(run_dir)
    doc = read_json(path)
    parse_routing(doc, source=str(path))
    return doc


def reuse_upstream(src_run_dir: Path, dst_run_dir: Path) -> bool:
    """Copy ranking, selection and routing artifacts of an earlier run into this one; False if same run."""
    if src_run_dir.resolve() == dst_run_dir.resolve():
        return False
    for rel in [
        Path("globals") / RANKING_JSON,
        Path("globals") / RANKING_PARQUET,
        Path("globals") / SELECTION_JSON,
        Path("globals") / HOLDOUT_JSON,
        Path("globals") / WINDOW_JSON,
        *[p.relative_to(src_run_dir) for p in src_run_dir.glob(f"targets/*/feature_selection/{SELECTED_FEATURES}")],
    ]:
        if (src_run_dir / rel).exists():
            write_atomic_bytes(dst_run_dir / rel, (src_run_dir / rel).read_bytes())
    if get_global_routing_path(src_run_dir).exists():
        write_routing(dst_run_dir, read_routing(src_run_dir))
    write_atomic_json(get_globals_dir(dst_run_dir) / REUSE_JSON, {"reused_from": str(src_run_dir)})
    return True


# --- models -----------------------------------------------------------------------------------------


def plan_model_jobs(
    decisions: dict[str, dict[str, Any]], selections: dict[str, dict[str, list[str]]], cfg: RunConfig
) -> list[ModelJob]:
    """Every (target, view, family[, symbol]) the routing decisions ask for, with its selected features."""
    jobs = []
    for target, d in sorted(decisions.items()):
        spec = cfg.target_spec(target)
        for view in parse_routing({target: d}).root[target].views():
            features = tuple(selections[target][view])
            ret = spec.base_name(cfg.bar_interval_minutes)
            common = {"horizon_bars": spec.horizon_bars, "reach_bars": spec.reach_bars, "features": features}
            common |= {"ret": ret, "research_only": not spec.tradable, "target_kind": spec.kind}
            if view == "SYMBOL_SPECIFIC":
                for symbol in d.get("winner_symbols") or []:
                    for family in cfg.ss_families:
                        jobs.append(ModelJob(target, view, family, symbol, **common))
            else:
                for family in cfg.families_for(target):
                    jobs.append(ModelJob(target, view, family, None, **common))
    return jobs


def job_id(job: ModelJob) -> str:
    """A stable, path-safe id: ``<target>__<view>__<symbol|ALL>__<family>``."""
    return f"{job.target}__{job.view}__{job.symbol or 'ALL'}__{job.family}"


def model_dir_for(run_dir: Path, job: ModelJob) -> Path:
    return get_scoped_artifact_dir(run_dir, job.target, job.view, job.family, job.symbol)


def train_one(
    panel: pl.DataFrame,
    job: ModelJob,
    run_dir: Path,
    cfg: RunConfig,
    provenance: dict[str, Any],
    holdout: Holdout | None = None,
) -> dict:
    """Train one job and record its outcome in ``globals/jobs/<job id>.json``; a failure is recorded, not raised.

    ``holdout`` defaults to the one the run recorded (:func:`read_holdout`)."""
    directory = model_dir_for(run_dir, job)
    record: dict[str, Any] = {
        **asdict(job),
        "features": list(job.features),
        "job_id": job_id(job),
        "model_dir": str(directory.relative_to(run_dir)),
    }
    started = time.perf_counter()
    try:
        meta = train_and_write(
            panel,
            list(job.features),
            job,
            directory,
            interval_minutes=cfg.bar_interval_minutes,
            params=cfg.family_params.get(job.family, {}),
            cv=cfg.cv,
            holdout=holdout or read_holdout(run_dir, panel),
            evaluation=cfg.evaluation,
            seed=cfg.seed,
            provenance={**provenance, "data_end": panel["ts"].max().strftime("%Y-%m-%dT%H:%M:%SZ")},
            refit_on_all_data=cfg.holdout.refit_on_all_data,
        )
        csr = meta.cross_sectional_ranking
        objective = csr.loss_type if csr is not None and csr.enabled else "pointwise"
        record.update(status="trained", mean_IC=meta.metrics.mean_IC, IC_IR=meta.metrics.IC_IR)
        record.update(input_mode=meta.input_mode, objective=objective)
    except Exception as exc:  # noqa: BLE001 - one family failing must not lose the run
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=5))
    record["seconds"] = round(time.perf_counter() - started, 3)  # CV, the fit, holdout scoring and the writes
    write_atomic_json(get_globals_dir(run_dir) / JOBS_DIR / f"{job_id(job)}.json", record)
    return record


_LONGEST_FIRST = {"Transformer": 0, "LSTM": 1, "MLP": 2, "CatBoost": 3, "LightGBM": 4, "XGBoost": 5}
"""The order a group's fits start in (slowest first, measured on the demo), so the threads finish together."""


def jobs_done(run_dir: Path) -> int:
    """The model jobs of a run that have recorded their outcome (``globals/jobs/``), from whichever process."""
    folder = get_globals_dir(run_dir) / JOBS_DIR
    return sum(1 for _ in folder.glob("*.json")) if folder.exists() else 0


def train_models(
    panel: pl.DataFrame,
    jobs: list[ModelJob],
    run_dir: Path,
    cfg: RunConfig,
    provenance: dict[str, Any],
    progress: TrainingProgress | None = None,
    jobs_total: int | None = None,
) -> list[dict[str, Any]]:
    """Train every job in this process, up to ``cfg.workers`` at once (the longest families first); the Dagster graph
    fans the groups out. Each finished job reports the run's training progress: the jobs of every group done so
    far (their records on disk) out of ``jobs_total``, the run's planned jobs (default: these)."""
    holdout = read_holdout(run_dir, panel)
    total = jobs_total or len(jobs)
    lock = threading.Lock()

    def one(job: ModelJob) -> dict[str, Any]:
        record = train_one(panel, job, run_dir, cfg, provenance, holdout)
        if progress:
            with lock:
                progress.progress("training", min(jobs_done(run_dir), total), total, current_target=job.target)
        return record

    order = sorted(range(len(jobs)), key=lambda i: _LONGEST_FIRST.get(jobs[i].family, len(_LONGEST_FIRST)))
    records = thread_map(one, [jobs[i] for i in order], cfg.workers)
    out: list[dict[str, Any]] = [{}] * len(jobs)
    for i, rec in zip(order, records, strict=True):
        out[i] = rec
    return out


# --- manifest ---------------------------------------------------------------------------------------


def write_manifest(
    run_dir: Path, cfg: RunConfig, run_metadata: dict[str, Any], progress: TrainingProgress | None = None
) -> dict[str, Any]:
    """Build ``manifest.json`` from the model directories and job outcomes on disk, and write it last."""
    outcomes = [read_json(p) for p in sorted((get_globals_dir(run_dir) / JOBS_DIR).glob("*.json"))]
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
            "symbols": sorted({m.symbol for m in mine if m.symbol}),
            "failed_jobs": [f"{o['view']}/{o['family']}/{o['symbol'] or '-'}: {o['error']}" for o in failed],
        }
        if progress:
            progress.emit(
                "target_complete",
                target=target,
                status="success" if status == "complete" else "failed" if status == "failed" else "success",
                models_trained=len(mine),
                best_auc=None,
                message=status,
            )
    reuse = get_globals_dir(run_dir) / REUSE_JSON
    holdout = get_globals_dir(run_dir) / HOLDOUT_JSON
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
            "interval_minutes": cfg.bar_interval_minutes,
            "routes": {t: d["route"] for t, d in sorted(decisions.items())},
            "blocked_targets": sorted(t for t, d in decisions.items() if d["route"] == "BLOCKED"),
            "reused_from": read_json(reuse)["reused_from"] if reuse.exists() else None,
            # the window no decision read; models report (and are picked by) their metrics on it
            "holdout": read_json(holdout) if holdout.exists() else None,
        },
        "contract_version": CONTRACT_VERSION,
    }
    manifest = parse_manifest(doc, source=str(get_manifest_path(run_dir)))
    check_target_coverage(manifest, {m.target for m in metas})
    write_atomic_json(get_manifest_path(run_dir), doc)
    if progress:
        progress.emit(
            "run_complete",
            stage="training",
            progress_pct=100.0,
            targets_complete=len(target_index),
            targets_total=len(decisions),
        )
    return doc
