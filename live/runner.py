"""Run, resume and follow: the engine over a bar source, out of sample, resumable from its ledger.

* The models come from the catalog by the account's policy (``live.loader``); only targets a broker can earn
  (not research-only) whose return window fits the holding horizon are traded.
* **Out of sample.** A model's run saw bars up to its ``data_end`` (training and holdout: the holdout chose it);
  its target reads ``reach_bars`` past a decision. The engine refuses to trade a bar at or before
  ``data_end + reach_bars`` bars of any loaded model, unless ``allow_in_sample`` (every decision is then labelled).
* **Resume.** A ledger that has cycles is resumed from its last committed one: its state, positions and the
  predictions still to be realised are reloaded, the last cycle's orders are resubmitted (the broker ignores ids it
  has) and the next bar timestamp is traded. The ledger records the models it trades; resuming with others is
  refused (use another account).
* SIGTERM and SIGINT stop the run at the next cycle boundary.
"""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from contracts.bridge import utc_now_iso
from live.broker.base import Order
from live.broker.paper import PaperBroker
from live.config import EngineConfig
from live.engine.cycle import Engine, EngineState, TradedModel, cycle_threads, model_changes
from live.journal import StateJournal
from live.ledger.schema import OWN_CYCLES_FROM, ledger_dir
from live.ledger.writer import LedgerWriter
from live.reload import HotReload, models_meta, record_models, record_swap
from live.selection import select_traded
from live.sources import LakeBars, follow, replay
from ml.bars import check_interval


class InSampleError(ValueError):
    """A bar the models' run saw was asked to be traded without ``allow_in_sample``."""


@dataclass
class RunSummary:
    account: str
    ledger: str
    cycles: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    resumed_after: str | None = None
    models: list[str] = field(default_factory=list)
    models_refused: list[str] = field(default_factory=list)
    models_skipped: list[str] = field(default_factory=list)
    first_tradable: str | None = None
    in_sample_cycles: int = 0
    stopped_by: str | None = None
    model_swaps: int = 0
    latency_ms: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("latency_ms")
        return d


def run_live(
    results: str | Path,
    cfg: EngineConfig,
    *,
    interval_minutes: float,
    start: datetime | None = None,
    until: datetime | None = None,
    max_cycles: int | None = None,
    follow_lake: bool = False,
    poll_seconds: float = 1.0,
    idle_exit_seconds: float = 30.0,
    stale_after_seconds: float = 600.0,
    install_signals: bool = True,
) -> RunSummary:
    """Trade the lake's bars (replay, or follow as they land) through the engine; see the module docstring."""
    results = Path(results)
    lake = LakeBars(results, interval_minutes)
    stamps = lake.timestamps()
    tail = lake.between(stamps[max(0, len(stamps) - 200)], stamps[-1])
    measured = check_interval(tail, interval_minutes, str(lake.directory))
    models, refused, skipped = select_traded(results, cfg, measured)
    ledger = LedgerWriter(results, cfg.account)
    summary = RunSummary(account=cfg.account, ledger=str(ledger.path), models_refused=refused, models_skipped=skipped)
    journal = StateJournal(results)
    if not models:
        ledger.close()
        raise RuntimeError(f"policy {cfg.policy!r} selected no model this engine can trade: {refused + skipped}")
    summary.models = [m.key for m in models]
    bound = max(m.first_tradable for m in models)
    summary.first_tradable = bound.isoformat()
    universe = sorted(tail["symbol"].unique().to_list())  # the symbols of the last 200 bar timestamps

    _refuse_in_sample_resume(ledger, cfg, models, stamps)
    _check_models_match(ledger, cfg, models, universe, measured)
    broker = PaperBroker(ledger_dir(results, cfg.account) / "broker.sqlite", cfg.broker)
    last = ledger.last_cycle()
    if last is None:
        state = EngineState(cash=cfg.broker.initial_cash)
        positions: dict[str, tuple[float, float, str]] = {}
        known: set[str] = set()
    else:
        state = EngineState.from_json(json.dumps(last[2]))
        positions = {
            r[0]: (r[1], r[2], r[3])
            for r in ledger.con.execute("select symbol, qty, avg_price, entry_ts from positions").fetchall()
        }
        known = {r[0] for r in ledger.con.execute("select fill_id from fills")}
    engine = Engine(cfg, models, universe, measured, ledger, broker, state, positions, known)
    engine.loaded_cycle = dict(ledger.con.execute(f"select m.model, {OWN_CYCLES_FROM} from models m"))
    hot = HotReload(results, cfg, measured, lake) if cfg.hot_reload else None

    if last is not None:
        after = datetime.fromisoformat(last[1])
        summary.resumed_after = last[1]
        _resubmit(ledger, broker, last[0])
        engine.restore_pending(
            ledger.con.execute(
                "select d.cycle_id, c.ts, d.models_json, d.blends_json, d.decisions_json from cycle_decisions d "
                "join cycles c using (cycle_id) where cycle_id > ? order by cycle_id",
                (last[0] - engine.max_reach,),
            ).fetchall()
        )
        cycle_id = last[0]
        ledger.event(last[0], "engine_resume", f"resumed after cycle {last[0]} ({last[1]})")
    else:
        first = start or bound
        if first < bound and not cfg.allow_in_sample:
            worst = max(models, key=lambda m: m.first_tradable)
            raise InSampleError(
                f"refusing to trade from {first.isoformat()}: model {worst.key} ({worst.model_dir}) was trained and "
                f"picked on bars up to {worst.data_end.isoformat()} and its target reads {worst.spec.reach_bars} "
                f"bar(s) further; the first out-of-sample bar is after "
                f"{(bound - timedelta(microseconds=1)).isoformat()} "
                "(--allow-in-sample trades it anyway, labelled in-sample)"
            )
        after = max([t for t in stamps if t < first], default=None)
        cycle_id = 0
        ledger.set_meta("started_at", utc_now_iso())
        ledger.event(
            None,
            "engine_start",
            f"account {cfg.account}: {len(models)} model(s) over {len(universe)} symbols, trading bars after "
            f"{after.isoformat() if after else 'the first'}",
            models=[m.key for m in models],
        )
    _warm(engine, lake, stamps, after)

    stop = threading.Event()
    previous = {}
    if install_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signo, _f: stop.set())
    journal.update(status="running", current_stage="idle", cycle_count=cycle_id)
    source = (
        follow(
            lake,
            after,
            poll_seconds=poll_seconds,
            idle_exit_seconds=idle_exit_seconds,
            stale_after_seconds=stale_after_seconds,
            on_stale=lambda s: _stale(ledger, cycle_id, s),
        )
        if follow_lake
        else replay(lake, after, until)
    )
    try:
        with cycle_threads():  # the cycles' array products are small: one BLAS thread
            for ts, part in source:
                if until is not None and ts > until:
                    break
                cycle_id += 1
                if hot is not None and hot.before_cycle(engine, cycle_id, ts):
                    summary.model_swaps += 1
                    summary.models = [m.key for m in engine.models]
                result = engine.run_cycle(cycle_id, ts, part)
                summary.cycles += 1
                summary.in_sample_cycles += ts < engine.first_tradable
                summary.first_ts = summary.first_ts or result.ts
                summary.last_ts = result.ts
                summary.latency_ms.append(result.latency_ms)
                journal.update(
                    status="paused" if state.risk.paused else "running",
                    current_stage="idle",
                    cycle_count=cycle_id,
                    last_cycle=result.ts,
                    symbols_active=len(part),
                )
                if stop.is_set():
                    summary.stopped_by = "signal"
                    break
                if max_cycles is not None and summary.cycles >= max_cycles:
                    break
        journal.update(status="stopped", current_stage="idle")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        broker.close()
        ledger.close()
    return summary


def _check_models_match(
    ledger: LedgerWriter, cfg: EngineConfig, models: list[TradedModel], universe: list[str], interval_minutes: float
) -> None:
    have = ledger.meta("models")
    mine = models_meta(models)
    if have is None:
        with ledger.cycle():  # all of it or nothing: a kill here leaves a ledger that starts afresh
            ledger.set_meta("models", mine)
            ledger.set_meta("config", cfg.model_dump_json())
            ledger.set_meta("universe", json.dumps(universe))
            ledger.set_meta("interval_minutes", repr(float(interval_minutes)))
            record_models(ledger.con, models)
    elif have != mine and cfg.hot_reload:
        last = ledger.last_cycle()
        old = dict(ledger.con.execute("select model, model_dir from models").fetchall())
        changes = model_changes(old, {m.key: m.model_dir for m in models})
        record_swap(ledger, models, changes, (last[0] if last else 0) + 1,
                    "the policy picks other models than when the engine stopped", "at resume")  # fmt: skip
    elif have != mine:
        raise ValueError(
            f"{ledger.path}: this account trades other models than the policy picks now; resume with the same models, "
            "start another --account, or set live.hot_reload"
        )


def _refuse_in_sample_resume(
    ledger: LedgerWriter, cfg: EngineConfig, models: list[TradedModel], stamps: list[datetime]
) -> None:
    """A resumed ledger whose next bar some model's run saw (other models picked while it was stopped) is refused
    unless ``allow_in_sample``, before anything is written."""
    last = ledger.last_cycle()
    if last is None or cfg.allow_in_sample:
        return
    after = datetime.fromisoformat(last[1])
    upcoming = [t for t in stamps if t > after]
    worst = max(models, key=lambda m: m.first_tradable)
    if upcoming and upcoming[0] < worst.first_tradable:
        ledger.close()
        raise InSampleError(
            f"refusing to resume at {upcoming[0].isoformat()}: model {worst.key} ({worst.model_dir}) was trained and "
            f"picked on bars up to {worst.data_end.isoformat()}; resume once the lake has bars after "
            f"{(worst.first_tradable - timedelta(microseconds=1)).isoformat()} (or --allow-in-sample)"
        )


def _resubmit(ledger: LedgerWriter, broker: PaperBroker, cycle_id: int) -> None:
    rows = ledger.con.execute(
        "select client_order_id, symbol, qty, reduce_only, submitted_ts from orders where cycle_id = ?", (cycle_id,)
    ).fetchall()
    orders = [Order(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]
    missing = [o for o in orders if o.client_order_id not in broker.known_orders([o.client_order_id])]
    if missing:
        broker.submit(missing)
        ledger.event(
            cycle_id, "orders_resubmitted", f"{len(missing)} order(s) of cycle {cycle_id} resubmitted after a restart"
        )


def _warm(engine: Engine, lake: LakeBars, stamps: list[datetime], after: datetime | None) -> None:
    if after is None:
        return
    i = stamps.index(after)
    for part in lake.at(stamps[max(0, i - engine.buffer.history_bars + 1) : i + 1]):
        engine.warm(part)


def _stale(ledger: LedgerWriter, cycle_id: int, seconds: float) -> None:
    ledger.event(cycle_id, "stale_data", f"no new bar for {seconds:.0f}s", "warning")
