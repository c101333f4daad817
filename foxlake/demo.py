"""``foxlake demo``: the whole pipeline on the shipped synthetic market, then where to look."""

from __future__ import annotations

import time
from pathlib import Path

from catalog import format_table, sql
from foxlake.pipeline import materialize_all
from foxlake.progress_view import ProgressView
from live.replay import replay
from ml.config import load_run_config


def run_demo(results: Path, config_path: str) -> int:
    cfg = load_run_config(config_path)
    t0 = time.perf_counter()
    print(f"foxlake demo — RESULTS at {results}")
    print(f"[1/2] materializing the asset graph through Dagster ({config_path}) …", flush=True)
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
    print("[2/2] live replay of the last 50 bars (models chosen by SQL over the catalog) …", flush=True)
    summary = replay(results, 50, interval_minutes=cfg.bar_interval_minutes)
    print(f"      {summary.models_loaded} model(s), {summary.cycles} cycles, {summary.predictions} predictions")
    elapsed = time.perf_counter() - t0

    run_dir = sql(results, "select run_dir from runs order by timestamp desc limit 1")["run_dir"][0]
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
    print("\nModels (per target and view; SYMBOL_SPECIFIC IC is a per-symbol time-series IC):")
    print(
        format_table(
            sql(
                results,
                f"select target, view, count(*) as models, count(distinct symbol) as symbols, "
                f"string_agg(distinct family, ',' order by family) as families, "
                f"round(avg(mean_ic), 4) as avg_mean_ic, bool_and(checksum_ok) as checksums_ok "
                f"from models where run_dir = '{run_dir}' group by all order by target, view",
            )
        )
    )
    print(f"\nPipeline finished in {elapsed:.1f}s.")
    print(f"""
Where to look:
  run directory     {results / run_dir}
  catalog           {results / "catalog.duckdb"}
                    foxlake catalog sql "select target, view, family, mean_ic, ic_ir from best_models"
  live replay       foxlake live replay --bars 50 --json
  Dagster UI        make dev   → http://127.0.0.1:3000 (asset graph, materialize from the UI)
  bridge            foxlake bridge serve   → http://127.0.0.1:8765/api/state
""")
    return 0
