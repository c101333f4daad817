"""Training assets: target ranking → feature selection → routing → models (fanned out) → manifest.

Every Dagster run writes one run directory; a downstream asset materialized alone copies what it reuses
from the upstream run into its own directory and records where it came from.
"""

import os
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from assets.resources import LakeResource
from ml import run as steps
from ml.parallel import resolve_workers
from ml.training import ModelJob


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _table(rows: list[list[str]], header: list[str]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


@dg.asset(group_name="training", kinds={"lightgbm", "sklearn"}, deps=["features"])
def target_ranking(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.Output[dict]:
    """Walk-forward skill of every target on the data before the holdout, pooled and per symbol, for each ranking
    family (purged on each row's target end; costs in every figure). The holdout is recorded, never read."""
    cfg = lake.run_config()
    run_dir = lake.run_dir(context, cfg)
    progress = steps.progress_for(lake.results(), cfg, run_dir)
    progress.stage("ranking", len(cfg.targets))
    try:
        panel, names, _ = steps.load_panel(lake.results(), cfg, run_dir)
        holdout = steps.holdout_of(panel, cfg)
        with progress.heartbeat("ranking"):
            evaluations = steps.rank_targets(panel, names, cfg, progress, holdout)
    except Exception as exc:
        progress.emit("error", stage="ranking", message=str(exc))
        raise
    steps.write_holdout(run_dir, holdout)
    path = steps.write_ranking(run_dir, evaluations)
    rows = [
        [
            e.target,
            f"{e.cs['mean_IC']:.4f}",
            f"{e.cs['mean_RankIC']:.4f}",
            f"{e.cs['IC_IR']:.3f}",
            f"{e.cs['t_stat']:.1f}",
            f"{e.cs['net_spread_bps']:.2f}",
            f"{sum(m['t_stat'] >= cfg.routing.symbol_t_min for m in e.symbols.values())}",
        ]
        for e in evaluations
    ]
    window = holdout.describe()
    return dg.Output(
        {"run_dir": str(run_dir)},
        metadata={
            "ranking": _table(
                rows, ["target", "mean_IC", "mean_RankIC", "IC_IR", "t", "net_spread_bps", "symbols t≥min"]
            ),
            "holdout": f"{window['start']} .. {window['end']} ({window['n_timestamps']} timestamps, never read here)",
            **{f"IC/{e.target}": e.cs["mean_IC"] for e in evaluations},
            "families": ", ".join(cfg.ranking_families),
            "path": dg.MetadataValue.path(str(path)),
        },
    )


@dg.asset(group_name="training")
def feature_selection(context: dg.AssetExecutionContext, lake: LakeResource, target_ranking: dict) -> dg.Output[dict]:
    """Per target and view: top-K features by importance consensus across families, correlation-pruned."""
    cfg = lake.run_config()
    run_dir = lake.run_dir(context, cfg)
    steps.reuse_upstream(Path(target_ranking["run_dir"]), run_dir)
    progress = steps.progress_for(lake.results(), cfg, run_dir)
    progress.stage("feature_selection", len(cfg.targets))
    panel, _, _ = steps.load_panel(lake.results(), cfg, run_dir)
    with progress.heartbeat("feature_selection"):
        selections = steps.select_features(panel, steps.read_ranking(run_dir), cfg)
    steps.write_selection(run_dir, selections)
    progress.progress("feature_selection", len(selections), len(selections))
    rows = [
        [t, v, ", ".join(s["selected"][:8]) + (" …" if len(s["selected"]) > 8 else "")]
        for t, views in sorted(selections.items())
        for v, s in views.items()
    ]
    top = {t: [r["feature"] for r in views["CROSS_SECTIONAL"]["ranked"][:5]] for t, views in selections.items()}
    return dg.Output(
        {"run_dir": str(run_dir)},
        metadata={
            "selected": _table(rows, ["target", "view", "features"]),
            **{f"top_features/{t}": ", ".join(f) for t, f in top.items()},
        },
    )


@dg.asset(group_name="training")
def routing_decisions(
    context: dg.AssetExecutionContext, lake: LakeResource, feature_selection: dict
) -> dg.Output[dict]:
    """CROSS_SECTIONAL / SYMBOL_SPECIFIC / BOTH / BLOCKED per target, with the rule and numbers behind it."""
    cfg = lake.run_config()
    run_dir = lake.run_dir(context, cfg)
    steps.reuse_upstream(Path(feature_selection["run_dir"]), run_dir)
    decisions = steps.decide_routes(steps.read_ranking(run_dir), cfg)
    steps.write_routing(run_dir, decisions)
    return dg.Output(
        {"run_dir": str(run_dir)},
        metadata={
            **{f"route/{t}": d["route"] for t, d in decisions.items()},
            "reasons": dg.MetadataValue.md("\n".join(f"- **{t}**: {d['reason']}" for t, d in decisions.items())),
        },
    )


# --- models: one op per target × view, its models fitted on ``workers`` threads (``ml.parallel``) ----------------


def concurrent_steps(context: dg.OpExecutionContext) -> int:
    """How many steps of this run execute at once: 1 in process, else the multiprocess executor's
    ``max_concurrent`` (Dagster's default: one per CPU)."""
    execution = (context.run_config.get("execution") or {}).get("config") or {}
    if "in_process" in execution:
        return 1
    return int((execution.get("multiprocess") or {}).get("max_concurrent") or os.cpu_count() or 1)


def threads_per_group(workers: int | None, n_groups: int, concurrent: int) -> int:
    """A group's fitting threads: the run's ``workers`` shared by the groups that train side by side."""
    return max(1, resolve_workers(workers) // max(1, min(concurrent, n_groups)))


def _group_key(job: ModelJob) -> str:
    return f"{job.target}__{job.view}"


@dg.op(out={"run": dg.Out(dict), "groups": dg.DynamicOut(dict)})
def plan_models(context: dg.OpExecutionContext, lake: LakeResource, routing_decisions: dict):
    """Reuse upstream artifacts if they come from another run, then one group per target × view (every family, and
    every symbol for SYMBOL_SPECIFIC)."""
    cfg = lake.run_config()
    run_dir = lake.run_dir(context, cfg)
    reused = steps.reuse_upstream(Path(routing_decisions["run_dir"]), run_dir)
    jobs = steps.plan_model_jobs(steps.read_routing(run_dir), steps.read_selection(run_dir), cfg)
    steps.progress_for(lake.results(), cfg, run_dir).stage("training", len(jobs))
    yield dg.Output({"run_dir": str(run_dir), "reused_upstream": reused, "n_jobs": len(jobs)}, "run")
    groups: dict[str, list[dict]] = {}
    for job in jobs:
        groups.setdefault(_group_key(job), []).append(asdict(job))
    threads = threads_per_group(cfg.workers, len(groups), concurrent_steps(context))
    for key, members in sorted(groups.items()):
        group = {"run_dir": str(run_dir), "jobs": members, "workers": threads, "jobs_total": len(jobs)}
        yield dg.DynamicOutput(group, output_name="groups", mapping_key=key)


@dg.op
def train_model_group(context: dg.OpExecutionContext, lake: LakeResource, group: dict) -> list[dict]:
    """Train one target × view: every family (and every symbol, for SYMBOL_SPECIFIC), the group's ``workers`` fits
    at once (:func:`threads_per_group`)."""
    cfg = lake.run_config().model_copy(update={"workers": group["workers"]})
    run_dir = Path(group["run_dir"])
    panel, _, dates = steps.load_panel(lake.results(), cfg, run_dir)
    provenance = {
        "run_id": cfg.run_id,
        "run_instance_id": run_dir.name,
        "config_digest": cfg.digest(),
        "data_partitions": dates,
        "dagster_run_id": context.run_id,
    }
    jobs = [ModelJob(**{**j, "features": tuple(j["features"])}) for j in group["jobs"]]
    progress = steps.progress_for(lake.results(), cfg, run_dir)
    with progress.heartbeat("training"):
        out = steps.train_models(panel, jobs, run_dir, cfg, provenance, progress, group.get("jobs_total"))
    for rec in out:
        if rec["status"] != "trained":
            context.log.warning(f"{rec['job_id']} failed: {rec['error']}")
    return out


@dg.op(out={"models": dg.Out(dict), "manifest": dg.Out(dict)})
def finalize_run(context: dg.OpExecutionContext, lake: LakeResource, run: dict, outcomes: list[list[dict]]):
    """Write manifest.json last, from what is on disk."""
    cfg = lake.run_config()
    run_dir = Path(run["run_dir"])
    progress = steps.progress_for(lake.results(), cfg, run_dir)
    doc = steps.write_manifest(run_dir, cfg, {"dagster_run_id": context.run_id}, progress)
    flat = [o for group in outcomes for o in group]
    trained = [o for o in flat if o["status"] == "trained"]
    per_family = [
        [o["target"], o["view"], o["symbol"] or "", o["family"], f"{o['mean_IC']:.4f}", _fmt(o["IC_IR"], 3)]
        for o in sorted(trained, key=lambda o: (o["target"], o["view"], o["symbol"] or "", o["family"]))
    ]
    yield dg.Output(
        {"run_dir": str(run_dir), "reused_upstream": run["reused_upstream"]},
        "models",
        metadata={
            "models_trained": len(trained),
            "models_failed": len(flat) - len(trained),
            "per_model (holdout)": _table(per_family[:200], ["target", "view", "symbol", "family", "mean_IC", "IC_IR"]),
            "run_dir": dg.MetadataValue.path(str(run_dir)),
        },
    )
    yield dg.Output(
        {"run_dir": str(run_dir)},
        "manifest",
        metadata={
            **{f"status/{t}": e["status"] for t, e in doc["target_index"].items()},
            "config_digest": doc["config_digest"],
            "reused_from": str(doc["run_metadata"]["reused_from"]),
            "path": dg.MetadataValue.path(str(run_dir / "manifest.json")),
        },
    )


@dg.graph_multi_asset(
    group_name="training",
    outs={
        "models": dg.AssetOut(
            description="Every routed target × view × family (× symbol) model with model_meta.json",
            kinds={"lightgbm", "xgboost", "catboost", "sklearn", "pytorch"},
        ),
        "manifest": dg.AssetOut(description="manifest.json, written last: target index, config digest, lineage"),
    },
)
def models_and_manifest(routing_decisions: dict):
    run, groups = plan_models(routing_decisions)
    outcomes = groups.map(train_model_group).collect()
    return finalize_run(run, outcomes)
