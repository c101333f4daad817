"""``foxlake``: demo, materialize, catalog, live replay, bridge and contracts commands.

Every command honours ``FOXLAKE_RESULTS`` (default ``./RESULTS``) unless ``--results`` is given; the global options
(``--results DIR``, ``--debug``) may come anywhere on the line. A user error (bad SQL, a bad landing file, a bad
config, an unknown policy, …) prints ``foxlake: error: …`` naming the file, field or line (a bad config: one more line
per bad field) and exits with status 2; ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from contracts.paths import results_root
from foxlake.log_files import log_size, route_warnings, warnings_since

DEFAULT_CONFIG = "configs/demo.yaml"


def _results(args: argparse.Namespace) -> Path:
    return results_root(args.results).resolve()


def cmd_demo(args: argparse.Namespace) -> int:
    if args.loop:
        from loop.story import LOOP_CONFIG, STORY_RESULTS, run_story

        root = Path(args.results or STORY_RESULTS).resolve()
        config = LOOP_CONFIG if args.config == DEFAULT_CONFIG else args.config
        tl = run_story(root, config_path=config, bridge_port=args.bridge_port, say=lambda s: print(s, flush=True))
        print("\n".join(["", "the closed loop, measured:", *("  " + line for line in tl.lines())]))
        r = root / "RESULTS"
        print(f"\nwhere to look: {r} (the lakehouse), {root / 'logs'} (dagster dev, engine), and\n"
              f"  foxlake --results {r} catalog alias show champion.fwd_ret_5m_from_open  # with numbers\n"
              f"  foxlake --results {r} bridge serve --account loop  # the dashboard over the ledger")  # fmt: skip
        return 0 if tl.swap_cycle_ts else 1
    from foxlake.demo import run_demo

    return run_demo(_results(args), args.config)


def cmd_materialize(args: argparse.Namespace) -> int:
    from foxlake.pipeline import materialize_all
    from foxlake.run_guard import RunGuardConfig

    guard = RunGuardConfig(wait_limit_seconds=args.pool_wait_seconds)
    out = materialize_all(_results(args), args.config, args.select or None, guard)
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return 0
    assets = ", ".join(out["assets"])
    print(f"Dagster run {out['run_id']} ({out['job']}): materialized {assets} in {out['seconds']:.1f}s")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from foxlake.init_project import init_project

    layout = init_project(args.directory)
    if args.json:
        print(json.dumps({k: str(v) for k, v in vars(layout).items()}, sort_keys=True))
        return 0
    print(f"foxlake: made {layout.config} and {layout.landing}/; next:")
    for step in layout.next_steps():
        print(f"  {step}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from foxlake.ui_server import serve_ui

    return serve_ui(args.host, args.port)


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell))
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
    filters = {"target": args.target, "view": args.view, "family": args.family, "symbol": args.symbol,
               "run_dir": args.run_dir}  # fmt: skip
    df = models(_results(args), **filters, columns=columns)
    _print_frame(df, args)
    if df.height == 0 and any(v is not None for v in filters.values()):
        from catalog import explain_no_match

        print(explain_no_match(_results(args), filters), file=sys.stderr)
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


def _interval(args: argparse.Namespace) -> float:
    if getattr(args, "interval_minutes", None):
        return float(args.interval_minutes)
    from ml.config import load_run_config

    return load_run_config(args.config).bar_interval_minutes


def _ts(text: str | None):
    from datetime import UTC, datetime

    if text is None:
        return None
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def cmd_live_run(args: argparse.Namespace) -> int:
    from live.config import load_engine_config
    from live.report import format_report, report
    from live.runner import run_live

    cfg = load_engine_config(
        args.config,
        account=args.account,
        policy=args.policy,
        allow_in_sample=args.allow_in_sample or None,
        strict=args.strict or None,
    )
    interval = _interval(args)
    summary = run_live(
        _results(args),
        cfg,
        interval_minutes=interval,
        start=_ts(args.start),
        until=_ts(args.until),
        max_cycles=args.max_cycles,
        follow_lake=args.follow,
        poll_seconds=args.poll_seconds,
        idle_exit_seconds=args.idle_exit_seconds,
        stale_after_seconds=args.stale_after_seconds,
    )
    if args.json:
        print(
            json.dumps(
                {"run": summary.to_dict(), "report": report(_results(args), cfg.account, interval)},
                default=str,
                sort_keys=True,
            )
        )
        return 0
    label = " (IN-SAMPLE: the models saw these bars)" if summary.in_sample_cycles else ""
    resumed = f", resumed after {summary.resumed_after}" if summary.resumed_after else ""
    print(f"traded {summary.cycles} bar(s) {summary.first_ts} .. {summary.last_ts}{resumed}{label}")
    print(
        f"models: {len(summary.models)} traded, {len(summary.models_skipped)} not tradable here, "
        f"{len(summary.models_refused)} refused; first out-of-sample bar after {summary.first_tradable}"
    )
    print(format_report(report(_results(args), cfg.account, interval)))
    return 0


def cmd_live_control(args: argparse.Namespace) -> int:
    from live.ledger.writer import append_command

    cid = append_command(_results(args), args.account, args.command, args.reason)
    print(f"command {cid}: {args.command} queued for account {args.account}; the engine applies it at its next cycle")
    return 0


def cmd_live_status(args: argparse.Namespace) -> int:
    from live.ledger.reader import LedgerReader

    with LedgerReader(_results(args), args.account) as led:
        last = led.one(
            "select c.cycle_id, c.ts, c.trading_state, c.paused, c.in_sample, e.equity, e.cash, e.gross_frac, "
            "e.net_frac from cycles c join equity e using (cycle_id) order by c.cycle_id desc limit 1"
        )
        positions = led.frame("select symbol, qty from positions order by symbol")
        commands = led.frame("select command_id, command, reason, applied_cycle, result from commands order by 1")
        state = (
            json.loads(led.one("select state_json from cycles order by cycle_id desc limit 1")["state_json"])
            if last
            else None
        )
    out = {
        "last_cycle": last,
        "positions": positions.to_dicts(),
        "commands": commands.to_dicts(),
        "kill_reason": state["risk"]["kill_reason"] if state else None,
    }
    if args.json:
        print(json.dumps(out, default=str, sort_keys=True))
        return 0
    if last is None:
        print(f"account {args.account}: no cycle yet")
        return 0
    print(
        f"account {args.account}: cycle {last['cycle_id']} at {last['ts']}, state {last['trading_state']}"
        f"{' (paused)' if last['paused'] else ''}, equity {last['equity']:,.2f}, cash {last['cash']:,.2f}, "
        f"gross {last['gross_frac']:.3f}, net {last['net_frac']:+.3f}"
    )
    if out["kill_reason"]:
        print(f"kill switch: {out['kill_reason']}")
    print(
        f"{positions.height} position(s): " + ", ".join(f"{r['symbol']} {r['qty']:+.0f}" for r in positions.to_dicts())
    )
    for c in commands.to_dicts():
        print(
            f"command {c['command_id']} {c['command']} ({c['reason']}): "
            + (f"applied at cycle {c['applied_cycle']}: {c['result']}" if c["applied_cycle"] else "pending")
        )
    return 0


def cmd_live_report(args: argparse.Namespace) -> int:
    from live.report import format_report, report

    rep = report(_results(args), args.account, _interval(args))
    print(json.dumps(rep, default=str, sort_keys=True) if args.json else format_report(rep))
    if args.html:
        from bridge.static_report import write_html_report

        if not rep.get("cycles"):
            raise ValueError(f"account {args.account}: no cycle yet, nothing to chart")
        path = write_html_report(_results(args), args.account, args.html, rep)
        print(f"wrote {path} (one static page: open it in a browser)", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_market_rewind(args: argparse.Namespace) -> int:
    from live.feed import rewind
    from ml.config import load_run_config

    removed = rewind(_results(args), load_run_config(args.config))
    print(f"removed {removed} partition(s) of the live days: `foxlake market play` lands them again")
    return 0


def cmd_market_play(args: argparse.Namespace) -> int:
    from live.feed import play
    from ml.config import load_run_config

    rep = play(
        _results(args),
        load_run_config(args.config),
        n_bars=args.bars,
        seconds_per_bar=args.seconds_per_bar,
        batch=args.batch,
        on_bar=(lambda ts: print(f"landed {ts}", flush=True)) if args.verbose else None,
    )
    print(f"landed {rep.landed} bar timestamp(s) {rep.first_ts} .. {rep.last_ts}; {rep.remaining} left to play")
    return 0


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def cmd_bridge_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.app import create_app
    from bridge.auth import TOKEN_ENV, resolve_token

    results = _results(args)
    if args.host not in LOOPBACK_HOSTS:
        if not os.environ.get(TOKEN_ENV, "").strip():
            print(
                f"foxlake: refusing to listen on {args.host}, beyond this machine, without a token chosen for it: "
                f"set {TOKEN_ENV} (every client beyond loopback then needs it, reads included), or bind 127.0.0.1",
                file=sys.stderr,
            )
            return 2
        print(
            f"foxlake: WARNING: the bridge listens on {args.host}, beyond this machine: clients need the "
            f"{TOKEN_ENV} token for every endpoint; anyone who sniffs plain HTTP can read it (use a TLS proxy).",
            file=sys.stderr,
        )
    token = resolve_token(results)
    where = {
        "env": f"from ${TOKEN_ENV}",
        "file": f"in {token.path}",
        "generated": f"generated into {token.path} (mode 0600): {token.value}",
    }[token.source]
    print(f"foxlake bridge: dashboard http://{args.host}:{args.port}/  docs /docs", flush=True)
    print(f"foxlake bridge: control token {where}", flush=True)
    uvicorn.run(
        create_app(results, account=args.account, token=token), host=args.host, port=args.port, log_level="warning"
    )
    return 0


def cmd_contracts_schema(args: argparse.Namespace) -> int:
    from contracts.schema import write_json_schemas

    for path in write_json_schemas(args.directory):
        print(path)
    return 0


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("foxlake")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    """argparse with a readable message for a missing subcommand ("choose a command: …")."""

    def error(self, message: str):
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and f"required: {action.dest}" in message:
                message = f"choose a command: {', '.join(action.choices)}"
        super().error(message)


OPTION_HELP = {
    "--config": f"run config YAML (default {DEFAULT_CONFIG})",
    "--json": "print JSON instead of a table",
    "--max-rows": "rows to print (default 50)",
    "--account": "the ledger RESULTS/live/<account> (default paper)",
    "--note": "why, kept in the alias history",
    "--by": "who (default: $FOXLAKE_USER or the login name)",
    "--max-cycles": "stop after this many cycles",
    "--interval-minutes": "live bar interval in minutes (default: the config's)",
    "--reason": "why (kept with the command in the ledger)",
    "--target": "only this target (any case)",
    "--view": "only this view: CROSS_SECTIONAL or SYMBOL_SPECIFIC (any case)",
    "--family": "only this family (any case)",
    "--symbol": "only this symbol (any case)",
    "--run-dir": "only this run directory (runs/<run_id>/<instance>)",
    "run_id": "the Dagster run id",
    "query": "one SELECT (or WITH … SELECT) over the catalog's tables and views",
    "name": "the alias name, e.g. champion or champion.<target>",
    "model_dir": "a model directory relative to RESULTS, as `foxlake catalog models` prints it",
    "directory": "the folder to write into",
    "command": "what the engine should do",
}
"""Help of the options that many commands share (an option without help of its own gets it from here)."""


def _fill_help(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _fill_help(sub)
        elif action.help is None:
            key = next((o for o in action.option_strings if o.startswith("--")), action.dest)
            action.help = OPTION_HELP.get(key)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="foxlake", description="foxlake: an open quant-ML lakehouse")
    parser.add_argument(
        "--results", default=None, help="RESULTS folder (default $FOXLAKE_RESULTS or ./RESULTS); anywhere on the line"
    )
    parser.add_argument("--debug", action="store_true", help="on an error, show the traceback too")
    parser.add_argument("--version", action="version", version=f"foxlake {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="generate data, materialize every asset, index, replay, summarize")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--loop", action="store_true", help="the closed loop instead, under dagster dev (configs/loop.yaml; "
                   "in its own folder: --results, default ./RESULTS-loop)")  # fmt: skip
    p.add_argument("--bridge-port", type=int, default=None, help="--loop: serve the dashboard on this port too")
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
    p.add_argument("--json", action="store_true", help="print the run id, job, assets and seconds as JSON")
    p.set_defaults(fn=cmd_materialize)
    p = sub.add_parser("init", help="a folder for your own bars: DIR/foxlake.yaml and DIR/RESULTS/lake/landing/")
    p.add_argument("directory", help="the folder (made if missing; an existing foxlake.yaml is never overwritten)")
    p.add_argument("--json", action="store_true", help="print the paths made as JSON")
    p.set_defaults(fn=cmd_init)
    p = sub.add_parser("ui", help="the Dagster UI: dagster-webserver and dagster-daemon on loopback (make dev)")
    p.add_argument("--host", default="127.0.0.1", help="the webserver's address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=3000, help="the webserver's port (default 3000)")
    p.set_defaults(fn=cmd_ui)
    p = sub.add_parser("completion", help="print a shell completion script (eval it, or save it where a shell looks)")
    p.add_argument("shell", choices=["bash", "zsh", "tcsh"], help="the shell: bash, zsh or tcsh")
    p.set_defaults(fn=cmd_completion)
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
    p = live.add_parser("run", help="paper-trade the lake's bars out of sample (replay, or --follow); resumable")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="run config; its live: section configures the engine")
    p.add_argument("--account", default=None, help="ledger folder RESULTS/live/<account> (default: the config's)")
    p.add_argument(
        "--policy",
        default=None,
        help="named policy (default holdout_per_family; configs/policies.yaml), alias:NAME, or a SQL select",
    )
    p.add_argument("--interval-minutes", type=float, default=None, help="live bar interval (default: the config's)")
    p.add_argument("--start", default=None, help="first bar to trade (ISO, UTC; default: the first out-of-sample bar)")
    p.add_argument("--until", default=None, help="last bar to trade (ISO, UTC)")
    p.add_argument("--max-cycles", type=int, default=None)
    p.add_argument("--follow", action="store_true", help="after the lake's bars, trade new ones as they land")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="--follow: how often to look for new bars")
    p.add_argument("--idle-exit-seconds", type=float, default=30.0, help="--follow: stop after this long without a bar")
    p.add_argument(
        "--stale-after-seconds", type=float, default=600.0, help="--follow: an event when no bar came for this long"
    )
    p.add_argument("--allow-in-sample", action="store_true", help="debugging: trade bars the models saw (labelled)")
    p.add_argument("--strict", action="store_true", help="refuse models whose meta recorded no checksum")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(fn=cmd_live_run)
    p = live.add_parser("control", help="pause, resume, kill or reset an engine (applied at its next cycle)")
    p.add_argument("command", choices=["pause", "resume", "kill", "reset"])
    p.add_argument("--reason", required=True)
    p.add_argument("--account", default="paper")
    p.set_defaults(fn=cmd_live_control)
    p = live.add_parser("status", help="the last cycle, positions and commands of an account")
    p.add_argument("--account", default="paper")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_live_status)
    p = live.add_parser("report", help="net P&L, Sharpe, drawdown, turnover, fees, realised IC beside holdout IC")
    p.add_argument("--account", default="paper")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--interval-minutes", type=float, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", default=None, metavar="FILE", help="also write the charts and tables as one static page")
    p.set_defaults(fn=cmd_live_report)

    mk = sub.add_parser("market", help="the synthetic market feed").add_subparsers(dest="market_cmd", required=True)
    p = mk.add_parser("play", help="land the synthetic market's live bars in the lake, one timestamp at a time")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--bars", type=int, default=None, help="how many bar timestamps (default: all that remain)")
    p.add_argument("--seconds-per-bar", type=float, default=0.0, help="pace (0: as fast as ingest goes)")
    p.add_argument("--batch", action="store_true", help="land them as one file (fastest)")
    p.add_argument("--verbose", action="store_true", help="print every timestamp landed")
    p.set_defaults(fn=cmd_market_play)
    p = mk.add_parser("rewind", help="remove the live bars the feed landed (the lake holds only the history again)")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.set_defaults(fn=cmd_market_rewind)

    br = sub.add_parser("bridge", help="dashboard bridge").add_subparsers(dest="bridge_cmd", required=True)
    p = br.add_parser("serve", help="serve the bridge and the dashboard with uvicorn on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1", help="another address needs $FOXLAKE_BRIDGE_TOKEN set")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    p.add_argument("--account", default="paper", help="the ledger RESULTS/live/<account> to show")
    p.set_defaults(fn=cmd_bridge_serve)

    con = sub.add_parser("contracts", help="contracts").add_subparsers(dest="contracts_cmd", required=True)
    p = con.add_parser("schema", help="write one JSON Schema per contract into DIR")
    p.add_argument("directory")
    p.set_defaults(fn=cmd_contracts_schema)
    _fill_help(parser)
    return parser


GLOBAL_OPTIONS = {"--results": True, "--debug": False}
"""The options that may come anywhere on the line (and whether each takes a value)."""


def hoist_global_options(argv: list[str]) -> list[str]:
    """``argv`` with the global options moved in front of the subcommand, so ``foxlake catalog runs --results DIR``
    means ``foxlake --results DIR catalog runs``."""
    front, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            takes_value = GLOBAL_OPTIONS[name] and "=" not in arg
            front.extend(argv[i : i + 2] if takes_value else [arg])
            i += 2 if takes_value else 1
            continue
        if arg == "--":
            rest.extend(argv[i:])
            break
        rest.append(arg)
        i += 1
    return front + rest


def user_error(exc: BaseException) -> str | None:
    """The message of an error the user can fix (one or two lines), or None for a bug (shown with its traceback).

    A Dagster step failure is unwrapped to the error the asset raised (a bad landing file names its file, line and
    column); DuckDB's errors keep their first two lines ("Did you mean …", "read-only")."""
    from foxlake.step_errors import StepFailure

    if isinstance(exc, StepFailure):
        return exc.text if exc.user_error else None
    while getattr(exc, "user_exception", None) is not None:
        exc = exc.user_exception
    import duckdb

    if isinstance(exc, duckdb.Error):
        from catalog.query import duckdb_message

        return duckdb_message(exc)
    import dagster as dg
    from dagster._core.errors import DagsterAssetCheckFailedError

    if isinstance(exc, dg.Failure):
        return exc.description or str(exc)
    if isinstance(exc, DagsterAssetCheckFailedError):
        return f"{exc} (see the run's check results in the Dagster UI)"
    if isinstance(exc, KeyError):
        return str(exc.args[0]) if exc.args else "KeyError"
    if isinstance(exc, FileNotFoundError | FileExistsError | ValueError | PermissionError):
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(hoist_global_options(list(sys.argv[1:] if argv is None else argv)))
    results = _results(args)
    log, start = route_warnings(results), log_size(results)
    try:
        return _run(args)
    finally:
        if count := warnings_since(results, start):
            print(f"foxlake: {count} library warning(s) written to {log}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    try:
        status = args.fn(args)
        sys.stdout.flush()  # a reader that left (`| head`) is found here, not at interpreter shutdown
        return status
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt as exc:
        return _leave_guarded_run(f"stopped: {exc or 'interrupted'}", 130)
    except Exception as exc:  # noqa: BLE001 - user errors become two lines and status 2; bugs keep their traceback
        from foxlake.run_guard import PoolWaitTimeout

        if isinstance(exc, PoolWaitTimeout):
            return _leave_guarded_run(f"error: {exc}", 2)
        message = user_error(exc)
        if message is None:
            raise
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"foxlake: error: {message}", file=sys.stderr)
        return 2


def _reader_gone() -> int:
    """Standard output's reader closed the pipe (``foxlake completion bash | head``): stop quietly, with the status
    of a program that SIGPIPE ended; standard output points at /dev/null so that the interpreter's last flush does
    not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def _leave_guarded_run(message: str, status: int) -> int:
    """A guarded run stopped: its run is marked failed and its slots freed; a worker thread may still be blocked
    inside Dagster, so leave at once instead of waiting for it at interpreter shutdown."""
    print(f"foxlake: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
