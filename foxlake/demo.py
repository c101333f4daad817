"""``foxlake demo``: the whole pipeline on the shipped synthetic market, then where to look."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import polars as pl

from catalog import format_table, sql
from foxlake.pipeline import materialize_all
from foxlake.progress_view import ProgressView
from live.config import load_engine_config
from live.feed import play, rewind
from live.ledger.schema import ledger_dir
from live.report import format_report, report
from live.runner import run_live
from ml.config import RunConfig, load_run_config
from ml.run import JOBS_DIR
from ml.synthetic import documented_ics, symbol_truth


def run_demo(results: Path, config_path: str) -> int:
    cfg = load_run_config(config_path)
    t0 = time.perf_counter()
    print(f"foxlake demo — RESULTS at {results}")
    # the story starts over: the lake holds only the history, the paper account is new
    rewind(results, cfg)
    shutil.rmtree(ledger_dir(results, load_engine_config(config_path).account), ignore_errors=True)
    print(f"[1/3] materializing the asset graph through Dagster ({config_path}) …", flush=True)
    with ProgressView(results):
        out = materialize_all(results, config_path)
    print(f"      Dagster run {out['run_id']}: {', '.join(out['assets'])} in {out['seconds']:.1f}s")
    counts = sql(
        results,
        "select (select count(*) from runs) as runs, (select count(*) from models) as models, "
        "(select count(*) from rejected) as rejected",
    )
    print(
        f"      catalog: {counts['runs'][0]} run(s), {counts['models'][0]} model(s), {counts['rejected'][0]} rejected"
    )
    print(
        f"[2/3] the market feed lands the {cfg.market.live_bars} bars after the history (foxlake market play) …",
        flush=True,
    )
    fed = play(results, cfg, batch=True)
    print(f"      landed {fed.landed} bar timestamps {fed.first_ts} .. {fed.last_ts}")
    engine_cfg = load_engine_config(config_path)
    print("[3/3] paper trading them, out of sample, through the full engine cycle (foxlake live run) …", flush=True)
    summary = run_live(results, engine_cfg, interval_minutes=cfg.bar_interval_minutes)
    print(
        f"      {len(summary.models)} model(s) traded ({len(summary.models_skipped)} not tradable at a "
        f"{engine_cfg.holding_bars}-bar holding), {summary.cycles} cycles from {summary.first_ts}"
    )
    elapsed = time.perf_counter() - t0

    newest = sql(results, "select run_dir, manifest_json from runs order by timestamp desc limit 1")
    run_dir = newest["run_dir"][0]
    holdout = json.loads(newest["manifest_json"][0])["run_metadata"]["holdout"]
    print("\nRouting decisions of the newest run:")
    print(
        format_table(
            sql(
                results,
                f"select target, route, reason from routing_decisions "
                f"where scope = 'global' and run_dir = '{run_dir}' order by target",
            )
        )
    )
    print(
        "\nModels of the newest run: holdout figures (no decision saw those bars) beside the CV figures that chose "
        "them,\nand the synthetic market's documented truth (SYMBOL_SPECIFIC: per-symbol time-series IC, averaged):"
    )
    models_df = sql(
        results,
        "select target, view, symbol, count(*) as models, avg(mean_ic) as holdout_ic, avg(cv_mean_ic) as cv_ic, "
        "avg(net_spread_bps) as holdout_net_bps, bool_or(research_only) as research_only, "
        f"bool_and(checksum_ok) as checksums_ok from models where run_dir = '{run_dir}' "
        "group by all order by target, view, symbol",
    )
    print(format_table(truth_table(models_df, cfg)))
    print("\nTraining time per family (each model: walk-forward CV, the fit and holdout scoring; 2 cores shared):")
    print(format_table(family_times(results / run_dir)))
    print(
        f"\nHoldout: {holdout['start']} .. {holdout['end']} ({holdout['n_timestamps']} bar timestamps); "
        f"costs {cfg.evaluation.cost_bps} bp one way on two-way turnover."
    )
    print("\nPaper trading on the bars after training (live realised; ledger " + summary.ledger + "):")
    print(format_report(report(results, engine_cfg.account, cfg.bar_interval_minutes)))
    print(f"\nPipeline finished in {elapsed:.1f}s.")
    print(f"""
Where to look:
  run directory     {results / run_dir}
  catalog           {results / "catalog.duckdb"}
                    foxlake catalog sql "select target, view, family, mean_ic, cv_mean_ic, net_spread_bps
                                         from best_models"
  paper account     foxlake live report      foxlake live status
                    foxlake live control pause --reason "lunch"   (applied at the next cycle)
                    sqlite3 {summary.ledger} "select * from equity"
  Dagster UI        make dev   → http://127.0.0.1:3000 (asset graph, materialize from the UI)
  dashboard         make dashboard (foxlake bridge serve)   → http://127.0.0.1:8765/  (API docs: /docs)
""")
    return 0


def family_times(run_dir: Path) -> pl.DataFrame:
    """Per family and objective: what it reads, the models trained and the seconds spent (the run's job records)."""
    records = [json.loads(p.read_text()) for p in sorted((run_dir / "globals" / JOBS_DIR).glob("*.json"))]
    rows = [
        {
            "family": r["family"],
            "input_mode": r.get("input_mode", "features"),
            "objective": r.get("objective", "pointwise"),
            "seconds": r.get("seconds") or 0.0,
        }
        for r in records
        if r.get("status") == "trained"
    ]
    if not rows:
        return pl.DataFrame()
    return (
        pl.DataFrame(rows)
        .group_by("family", "input_mode", "objective")
        .agg(
            pl.len().alias("models"),
            pl.col("seconds").sum().round(1).alias("seconds_total"),
            pl.col("seconds").mean().round(2).alias("seconds_per_model"),
        )
        .sort("seconds_total", "family", descending=[True, False])
    )


def truth_table(models_df: pl.DataFrame, cfg: RunConfig) -> pl.DataFrame:
    """Per target and view: holdout and CV IC, and the planted truth (synthetic market only), rounded."""
    rows = []
    for (target, view), part in models_df.group_by(["target", "view"], maintain_order=True):
        spec = cfg.target_spec(target)
        args = (spec.horizon_bars, spec.delay_bars, spec.entry)
        if cfg.data_source != "synthetic":
            truth = None
        elif view == "CROSS_SECTIONAL":
            truth = documented_ics(cfg.market, *args)["cs_ic"]
        else:
            truth = sum(symbol_truth(cfg.market, s, *args) for s in part["symbol"]) / part.height
        rows.append(
            {
                "target": target,
                "view": view,
                "symbols": part["symbol"].drop_nulls().len(),
                "models": int(part["models"].sum()),
                "holdout_ic": round(float(part["holdout_ic"].mean()), 4),
                "cv_ic": round(float(part["cv_ic"].mean()), 4),
                "truth_ic": None if truth is None else round(truth, 4),
                "holdout_net_bps": round(float(part["holdout_net_bps"].mean()), 2),
                "research_only": bool(part["research_only"].any()),
                "checksums_ok": bool(part["checksums_ok"].all()),
            }
        )
    return pl.DataFrame(rows)
