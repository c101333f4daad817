"""``foxlake``: demo, materialize, catalog, live replay, bridge and contracts commands.

Every command honours ``FOXLAKE_RESULTS`` (default ``./RESULTS``) unless ``--results`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
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
    from foxlake.run_guard import RunGuardConfig

    guard = RunGuardConfig(wait_limit_seconds=args.pool_wait_seconds)
    out = materialize_all(_results(args), args.config, args.select or None, guard)
    print(f"Dagster run {out['run_id']}: materialized {', '.join(out['assets'])} in {out['seconds']:.1f}s")
    return 0


def cmd_runs_free(args: argparse.Namespace) -> int:
    from foxlake.dagster_env import instance
    from foxlake.run_guard import free_run

    free_run(instance(), args.run_id)
    print(f"run {args.run_id}: marked failed (if it had not ended) and its pool slots freed")
    return 0


def cmd_catalog_index(args: argparse.Namespace) -> int:
    from catalog import build_catalog

    t0 = time.perf_counter()
    rep = build_catalog(_results(args), full=args.full, verify=args.verify, workers=args.workers)
    if args.json:
        print(json.dumps(rep.to_dict(), sort_keys=True))
        return 0
    what = {"full": "rebuilt from the files", "incremental": "updated", "unchanged": "unchanged"}[rep.mode]
    print(
        f"catalog {what}: {rep.runs} run(s), {rep.models} model(s), {rep.routing_decisions} routing row(s), "
        f"{rep.rejected} rejected, {rep.aliases} alias row(s); read {rep.model_dirs_read} model dir(s) and "
        f"{rep.files_read} other file(s) → {rep.path} ({time.perf_counter() - t0:.2f}s)"
    )
    return 0


def _print_frame(df, args: argparse.Namespace) -> None:
    from catalog import format_table

    if getattr(args, "json", False):
        print(json.dumps(df.to_dicts(), default=str, indent=2))
    else:
        print(format_table(df, max_rows=getattr(args, "max_rows", 50)))


def cmd_catalog_sql(args: argparse.Namespace) -> int:
    from catalog import sql

    _print_frame(sql(_results(args), args.query), args)
    return 0


def cmd_catalog_models(args: argparse.Namespace) -> int:
    from catalog import models
    from catalog.query import MODEL_SUMMARY_COLUMNS

    columns = "*" if args.all_columns else MODEL_SUMMARY_COLUMNS
    df = models(_results(args), target=args.target, view=args.view, family=args.family, symbol=args.symbol,
                run_dir=args.run_dir, columns=columns)  # fmt: skip
    _print_frame(df, args)
    return 0


def cmd_catalog_runs(args: argparse.Namespace) -> int:
    from catalog import runs

    _print_frame(runs(_results(args)), args)
    return 0


def cmd_catalog_best(args: argparse.Namespace) -> int:
    from catalog import best_models

    df = best_models(_results(args), args.metric).select(
        "target",
        "view",
        "symbol",
        "family",
        "interval_minutes",
        "mean_ic",
        "cv_mean_ic",
        "ic_ir",
        "t_stat",
        "net_spread_bps",
        "research_only",
        "model_dir",
    )
    _print_frame(df, args)
    return 0


def cmd_catalog_rejected(args: argparse.Namespace) -> int:
    from catalog import rejected

    _print_frame(rejected(_results(args)), args)
    return 0


def cmd_catalog_alias_set(args: argparse.Namespace) -> int:
    from catalog import set_alias

    rec = set_alias(_results(args), args.name, args.model_dir, note=args.note, set_by=args.by, check=not args.force)
    print(f"{rec['alias']} → {rec['model_dir']} (set by {rec['set_by']} at {rec['set_at']})")
    return 0


def cmd_catalog_alias_clear(args: argparse.Namespace) -> int:
    from catalog import clear_alias

    rec = clear_alias(_results(args), args.name, note=args.note, set_by=args.by)
    print(f"{rec['alias']} cleared (by {rec['set_by']} at {rec['set_at']})")
    return 0


def cmd_catalog_alias_list(args: argparse.Namespace) -> int:
    from catalog import list_aliases

    df = list_aliases(_results(args)).select("alias", "model_dir", "set_at", "set_by", "note", "indexed", "checksum_ok")
    _print_frame(df, args)
    return 0


def cmd_catalog_alias_show(args: argparse.Namespace) -> int:
    from catalog import alias_history

    df = alias_history(_results(args), args.name)
    if df.height == 0:
        raise KeyError(f"alias {args.name!r} has never been set")
    _print_frame(df, args)
    return 0


def cmd_live_replay(args: argparse.Namespace) -> int:
    from live.policies import DEFAULT_POLICY
    from live.replay import replay

    interval = args.interval_minutes
    if interval is None:
        from ml.config import load_run_config

        interval = load_run_config(args.config).bar_interval_minutes
    policy = args.policy or DEFAULT_POLICY
    summary = replay(_results(args), args.bars, interval_minutes=interval, policy=policy, strict=args.strict)
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


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def cmd_bridge_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.app import create_app

    if args.host not in LOOPBACK_HOSTS:
        print(
            f"foxlake: WARNING: the bridge listens on {args.host}, beyond this machine: anyone who can reach "
            f"port {args.port} reads the engine's state. Bind 127.0.0.1 (the default) unless you mean it.",
            file=sys.stderr,
        )
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
    p.add_argument(
        "--pool-wait-seconds",
        type=float,
        default=600.0,
        help="give up after waiting this long for a pool slot a live run holds (slots of dead runs are freed)",
    )
    p.set_defaults(fn=cmd_materialize)
    runs = sub.add_parser("runs", help="Dagster runs of this instance").add_subparsers(dest="runs_cmd", required=True)
    p = runs.add_parser("free", help="mark a run whose process is gone failed and free its pool slots")
    p.add_argument("run_id")
    p.set_defaults(fn=cmd_runs_free)

    cat = sub.add_parser("catalog", help="the DuckDB catalog").add_subparsers(dest="catalog_cmd", required=True)
    p = cat.add_parser("index", help="bring RESULTS/catalog.duckdb up to date with the files (incremental)")
    p.add_argument("--full", action="store_true", help="rebuild from the files instead of applying what changed")
    p.add_argument("--verify", action="store_true", help="stat every indexed file (catches in-place edits)")
    p.add_argument("--workers", type=int, default=None, help="reader processes (default: automatic)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(fn=cmd_catalog_index)
    p = cat.add_parser("sql", help="run SQL against the catalog and print a table")
    p.add_argument("query")
    p.add_argument("--json", action="store_true", help="print rows as JSON")
    p.add_argument("--max-rows", type=int, default=50)
    p.set_defaults(fn=cmd_catalog_sql)
    p = cat.add_parser("models", help="list indexed models")
    for opt in ("--target", "--view", "--family", "--symbol", "--run-dir"):
        p.add_argument(opt, default=None)
    p.add_argument("--all-columns", action="store_true", help="every column, not the summary")
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-rows", type=int, default=50)
    p.set_defaults(fn=cmd_catalog_models)
    p = cat.add_parser("runs", help="list runs with their model counts and best metrics")
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-rows", type=int, default=50)
    p.set_defaults(fn=cmd_catalog_runs)
    p = cat.add_parser(
        "best",
        help="best model per target/view/symbol by holdout metrics (newest complete run, checksum ok, above the floor)",
    )
    p.add_argument(
        "--metric",
        default="pick_score",
        help="pick_score (holdout IC_IR pooled, t-stat per symbol), ic_ir, mean_ic, t_stat, net_spread_bps, …",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-rows", type=int, default=50)
    p.set_defaults(fn=cmd_catalog_best)
    p = cat.add_parser("rejected", help="files that broke a contract, with the reason")
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-rows", type=int, default=50)
    p.set_defaults(fn=cmd_catalog_rejected)
    al = cat.add_parser("alias", help="model aliases (champion, challenger, …)").add_subparsers(
        dest="alias_cmd", required=True
    )
    p = al.add_parser("set", help="point NAME at MODEL_DIR (relative to RESULTS); the old target stays in history")
    p.add_argument("name")
    p.add_argument("model_dir")
    p.add_argument("--note", default=None)
    p.add_argument("--by", default=None, help="who sets it (default: $FOXLAKE_USER or the login name)")
    p.add_argument("--force", action="store_true", help="allow a model directory the catalog does not list")
    p.set_defaults(fn=cmd_catalog_alias_set)
    p = al.add_parser("clear", help="make NAME point nowhere (kept in history)")
    p.add_argument("name")
    p.add_argument("--note", default=None)
    p.add_argument("--by", default=None)
    p.set_defaults(fn=cmd_catalog_alias_clear)
    p = al.add_parser("list", help="active aliases and the models they point at")
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-rows", type=int, default=50)
    p.set_defaults(fn=cmd_catalog_alias_list)
    p = al.add_parser("show", help="the history of one alias")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-rows", type=int, default=50)
    p.set_defaults(fn=cmd_catalog_alias_show)

    live = sub.add_parser("live", help="live trading").add_subparsers(dest="live_cmd", required=True)
    p = live.add_parser("replay", help="replay the last N bars through the live path")
    p.add_argument("--bars", type=int, default=50)
    p.add_argument(
        "--policy",
        default=None,
        help="named policy (default holdout_per_family; configs/policies.yaml), alias:NAME, or a SQL select",
    )
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
    except (KeyboardInterrupt, RuntimeError) as exc:
        from foxlake.run_guard import PoolWaitTimeout

        if not isinstance(exc, KeyboardInterrupt | PoolWaitTimeout):
            raise
        # a guarded run stopped: its run is marked failed and its slots freed; a worker thread may still be
        # blocked inside Dagster, so leave at once instead of waiting for it at interpreter shutdown
        interrupted = isinstance(exc, KeyboardInterrupt)
        print(f"foxlake: {'stopped' if interrupted else 'error'}: {exc or 'interrupted'}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130 if interrupted else 2)


if __name__ == "__main__":
    sys.exit(main())
