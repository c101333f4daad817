"""Training assets: target ranking → routing decisions → models → manifest, one run directory per Dagster run."""

from pathlib import Path

import dagster as dg

from assets.resources import LakeResource
from ml import run as steps


@dg.asset(group_name="training", kinds={"lightgbm"})
def target_ranking(context: dg.AssetExecutionContext, lake: LakeResource, features: dict) -> dg.Output[dict]:
    """Out-of-sample skill of every target, pooled and per symbol (walk-forward, purged)."""
    cfg = lake.run_config()
    run_dir = lake.run_dir(context, cfg)
    panel, names, _ = steps.load_panel(lake.results(), cfg)
    evaluations = steps.rank_targets(panel, names, cfg)
    path = steps.write_ranking(run_dir, evaluations)
    table = "\n".join(
        f"| {e.target} | {e.cs['mean_IC']:.4f} | {e.cs['mean_RankIC']:.4f} | {e.cs['IC_IR']:.3f} | {e.cs['t_stat']:.1f} |"
        for e in evaluations
    )
    return dg.Output(
        {"run_dir": str(run_dir)},
        metadata={
            "ranking": dg.MetadataValue.md(
                "| target | mean_IC | mean_RankIC | IC_IR | t |\n|---|---|---|---|---|\n" + table
            ),
            **{f"IC/{e.target}": e.cs["mean_IC"] for e in evaluations},
            "path": dg.MetadataValue.path(str(path)),
        },
    )


@dg.asset(group_name="training")
def routing_decisions(context: dg.AssetExecutionContext, lake: LakeResource, target_ranking: dict) -> dg.Output[dict]:
    """CROSS_SECTIONAL / SYMBOL_SPECIFIC / BOTH / BLOCKED per target, with the rule and numbers behind it."""
    cfg = lake.run_config()
    run_dir = lake.run_dir(context, cfg)
    steps.reuse_upstream(Path(target_ranking["run_dir"]), run_dir)
    decisions = steps.decide_routes(steps.read_ranking(run_dir), cfg)
    steps.write_routing(run_dir, decisions)
    return dg.Output(
        {"run_dir": str(run_dir)},
        metadata={
            **{f"route/{t}": d["route"] for t, d in decisions.items()},
            "reasons": dg.MetadataValue.md("\n".join(f"- **{t}**: {d['reason']}" for t, d in decisions.items())),
        },
    )


@dg.asset(group_name="training", kinds={"lightgbm"})
def models(context: dg.AssetExecutionContext, lake: LakeResource, routing_decisions: dict) -> dg.Output[dict]:
    """One model per routed target × view × family (× symbol), each with model_meta.json."""
    cfg = lake.run_config()
    run_dir = lake.run_dir(context, cfg)
    reused = steps.reuse_upstream(Path(routing_decisions["run_dir"]), run_dir)
    panel, names, dates = steps.load_panel(lake.results(), cfg)
    jobs = steps.plan_model_jobs(steps.read_routing(run_dir), cfg)
    provenance = {
        "run_id": cfg.run_id,
        "run_instance_id": run_dir.name,
        "config_digest": cfg.digest(),
        "data_partitions": dates,
    }
    outcomes = steps.train_models(panel, names, jobs, run_dir, cfg, provenance)
    trained = [o for o in outcomes if o["status"] == "trained"]
    return dg.Output(
        {"run_dir": str(run_dir), "reused_upstream": reused},
        metadata={
            "models_trained": len(trained),
            "models_failed": len(outcomes) - len(trained),
            **{
                f"IC/{o['target']}/{o['view']}/{o['family']}" + (f"/{o['symbol']}" if o["symbol"] else ""): o["mean_IC"]
                for o in trained
            },
            "run_dir": dg.MetadataValue.path(str(run_dir)),
        },
    )


@dg.asset(group_name="training")
def manifest(context: dg.AssetExecutionContext, lake: LakeResource, models: dict) -> dg.Output[dict]:
    """``manifest.json``, written last: the run's target index, config digest and lineage."""
    cfg = lake.run_config()
    run_dir = Path(models["run_dir"])
    doc = steps.write_manifest(run_dir, cfg, {"dagster_run_id": context.run_id})
    return dg.Output(
        {"run_dir": str(run_dir)},
        metadata={
            **{f"status/{t}": e["status"] for t, e in doc["target_index"].items()},
            "config_digest": doc["config_digest"],
            "path": dg.MetadataValue.path(str(run_dir / "manifest.json")),
        },
    )
