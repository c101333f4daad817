"""``foxlake``: demo, materialize, catalog, live replay, bridge and contracts commands.

Every command honours ``FOXLAKE_RESULTS`` (default ``./RESULTS``) unless ``--results`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from contracts.paths import results_root

DEFAULT_CONFIG = "configs/demo.yaml"


def _results(args: argparse.Namespace) -> Path:
    return results_root(args.results).resolve()


def cmd_demo(args: argparse.Namespace) -> int:
    from foxlake.demo import run_demo

    return run_demo(_results(args), args.config)


def cmd_materialize(args: argparse.Namespace) -> int:
    from foxlake.pipeline import materialize_all

    out = materialize_all(_results(args), args.config, args.select or None)
    print(f"Dagster run {out['run_id']}: materialized {', '.join(out['assets'])} in {out['seconds']:.1f}s")
    return 0


def cmd_catalog_index(args: argparse.Namespace) -> int:
    from catalog import build_catalog

    t0 = time.perf_counter()
    rep = build_catalog(_results(args))
    print(
        f"indexed {rep.runs} run(s), {rep.models} model(s), {rep.routing_decisions} routing row(s), "
        f"{rep.rejected} rejected → {rep.path} ({time.perf_counter() - t0:.2f}s)"
    )
    return 0


def cmd_catalog_sql(args: argparse.Namespace) -> int:
    from catalog import format_table, sql

    df = sql(_results(args), args.query)
    if args.json:
        print(json.dumps(df.to_dicts(), default=str, indent=2))
    else:
        print(format_table(df, max_rows=args.max_rows))
    return 0


def cmd_live_replay(args: argparse.Namespace) -> int:
    from live.replay import replay

    interval = args.interval_minutes
    if interval is None:
        from ml.config import load_run_config

        interval = load_run_config(args.config).bar_interval_minutes
    summary = replay(_results(args), args.bars, interval_minutes=interval, policy=args.policy, strict=args.strict)
    if args.json:
        print(json.dumps(summary.to_dict(), default=str, sort_keys=True))
    else:
        print(
            f"replayed {summary.cycles} bar(s) {summary.first_ts} → {summary.last_ts} on {summary.symbols} symbols\n"
            f"models loaded: {summary.models_loaded} ({', '.join(summary.models)})\n"
            f"models refused: {len(summary.models_refused)}\n"
            f"predictions: {summary.predictions}, incomplete inputs: {summary.incomplete_inputs}"
        )
    return 0


def cmd_bridge_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.app import create_app

    uvicorn.run(create_app(_results(args)), host=args.host, port=args.port, log_level="info")
    return 0


def cmd_contracts_schema(args: argparse.Namespace) -> int:
    from contracts.schema import write_json_schemas

    for path in write_json_schemas(args.directory):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foxlake", description="foxlake: an open quant-ML lakehouse")
    parser.add_argument("--results", default=None, help="RESULTS folder (default $FOXLAKE_RESULTS or ./RESULTS)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="generate data, materialize every asset, index, replay, summarize")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("materialize", help="materialize assets through Dagster")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--select", nargs="*", help="asset names (default: all)")
    p.set_defaults(fn=cmd_materialize)

    cat = sub.add_parser("catalog", help="the DuckDB catalog").add_subparsers(dest="catalog_cmd", required=True)
    p = cat.add_parser("index", help="(re)build RESULTS/catalog.duckdb from the files")
    p.set_defaults(fn=cmd_catalog_index)
    p = cat.add_parser("sql", help="run SQL against the catalog and print a table")
    p.add_argument("query")
    p.add_argument("--json", action="store_true", help="print rows as JSON")
    p.add_argument("--max-rows", type=int, default=50)
    p.set_defaults(fn=cmd_catalog_sql)

    live = sub.add_parser("live", help="live trading").add_subparsers(dest="live_cmd", required=True)
    p = live.add_parser("replay", help="replay the last N bars through the live path")
    p.add_argument("--bars", type=int, default=50)
    p.add_argument("--policy", default="best_ic_ir", help="named policy or a SQL select returning model_dir")
    p.add_argument("--interval-minutes", type=float, default=None, help="live bar interval (default: the config's)")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--strict", action="store_true", help="refuse models whose checksum is missing or wrong")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(fn=cmd_live_replay)

    br = sub.add_parser("bridge", help="dashboard bridge").add_subparsers(dest="bridge_cmd", required=True)
    p = br.add_parser("serve", help="serve the bridge with uvicorn on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.set_defaults(fn=cmd_bridge_serve)

    con = sub.add_parser("contracts", help="contracts").add_subparsers(dest="contracts_cmd", required=True)
    p = con.add_parser("schema", help="write one JSON Schema per contract into DIR")
    p.add_argument("directory")
    p.set_defaults(fn=cmd_contracts_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"foxlake: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
