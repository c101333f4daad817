"""The closed loop, end to end, with a real Dagster instance and its daemon (``make demo-loop``, the e2e test).

The processes a desk runs, each a subprocess on loopback:

* ``dagster dev`` (webserver + daemon + code server) over ``configs/loop.yaml``: the landing sensor ingests every
  file the feed lands; ``retrain_on_new_data`` (started here through GraphQL, as the UI's toggle does) trains the
  first models once the history is in; ``retrain_on_decay`` requests a retrain when the champion's realised IC
  falls significantly below its holdout IC; every training run ends in the ``champions`` asset (promotion);
* the engine, ``foxlake live run --follow`` with the ``champions`` policy and ``hot_reload``;
* optionally the bridge (``--bridge-port``), whose dashboard shows the swap;
* the feed, in this process: the synthetic market's bars as landing files (parquet), the history first, then the
  live bars ``batch_bars`` at a time every ``batch_bars * seconds_per_bar`` seconds. While a retrain requested on
  decay is queued or running, the feed holds its next batch (at most ``hold_for_retrain_s``): the retrain then
  learns, and the swap is measured over, the same bars on a loaded machine as on an idle one. The time held is in
  the timeline.

The market (``configs/loop.yaml``) flips its volume signal at the first bar of the second live session. What is
expected, and what :func:`run_story` measures and returns as a :class:`Timeline`: the champion's realised IC turns
negative; the decay test fires within ``loop.decay.window_horizons`` realised horizons (plus the sensor's tick);
a retrain on the newest ``train_window_days`` sessions whose window still holds pre-flip bars trains nothing that
passes routing (no challenger), one after the cooldown learns the new sign and is promoted; the engine swaps to it
at the next cycle boundary after its data end; its realised IC over the remaining bars is the new truth.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import polars as pl

from catalog.alias_file import read_alias_file
from catalog.query import sql
from live.config import EngineConfig
from live.ledger.reader import LedgerReader
from loop.config import DecayConfig, loop_config
from loop.decay import first_detection
from ml.config import load_run_config
from ml.ingest import landing_dir, write_landing_parquet
from ml.synthetic import documented_ics, make_market, split_history

REPO = Path(__file__).resolve().parents[1]
LOOP_CONFIG = REPO / "configs" / "loop.yaml"
LOCATION = "assets.definitions"
AUTOMATION_SENSOR = "default_automation_condition_sensor"
"""Dagster's own sensor that evaluates the assets' automation conditions (``features``: eager); off by default."""
STARTED_SENSORS = ("retrain_on_new_data", "retrain_on_decay", AUTOMATION_SENSOR)
LOOP_SENSORS = ("landing_sensor", *STARTED_SENSORS)
STORY_RESULTS = "RESULTS-loop"
"""``make demo-loop``'s folder: ``RESULTS/`` (the lakehouse), ``dagster_home/`` and ``logs/``, made afresh each time."""
MARKER = ".foxlake-loop-story"


@dataclass
class Timeline:
    """What happened, in bars and in seconds since the story started (``None``: it did not happen)."""

    flip_bar_ts: str
    truth_ic_after_flip: float
    first_champion_at_s: float | None = None
    engine_first_cycle_ts: str | None = None
    detected_cycle_ts: str | None = None
    detected_horizons_after_flip: int | None = None
    detected_at_s: float | None = None
    decay_runs: list[dict] = field(default_factory=list)
    promoted_at_s: float | None = None
    promotion_note: dict | None = None
    swap_cycle_ts: str | None = None
    swap_at_s: float | None = None
    realised_ic_before_flip: float | None = None
    realised_ic_after_flip_old_model: float | None = None
    realised_ic_after_swap: float | None = None
    realised_cycles_after_swap: int = 0
    feed_held_s: float = 0.0
    last_cycle_ts: str | None = None
    test_fires_after_horizons: int | None = None
    sensor_ticks: dict[str, dict[str, int]] = field(default_factory=dict)
    runs_by_reason: dict[str, list[str]] = field(default_factory=dict)
    partitions: dict[str, dict[str, int]] = field(default_factory=dict)
    lake_days: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        t = self
        note = t.promotion_note or {}
        ch, cp = note.get("challenger_score") or {}, note.get("champion_score") or {}

        def num(x: float | None, fmt: str = "+.4f") -> str:
            return "—" if x is None else format(x, fmt)

        return [
            f"flip of the volume signal    bar {t.flip_bar_ts} (truth IC after it: ±{t.truth_ic_after_flip:.4f})",
            f"first champion               {num(t.first_champion_at_s, '.0f')} s; engine's first bar "
            f"{t.engine_first_cycle_ts}",
            f"realised IC, old champion    {num(t.realised_ic_before_flip)} before the flip, "
            f"{num(t.realised_ic_after_flip_old_model)} after it",
            f"decay test significant       {t.test_fires_after_horizons} realised horizons after the flip "
            "(the test replayed on the ledger)",
            f"decay detected (sensor)      bar {t.detected_cycle_ts}: {t.detected_horizons_after_flip} realised "
            f"horizons after the flip ({num(t.detected_at_s, '.0f')} s)",
            f"retrains requested on decay  {len(t.decay_runs)}: "
            + ", ".join(f"{r['status']} ({r['tags'].get('foxlake/ledger_cycle', '?')})" for r in t.decay_runs),
            f"challenger promoted          {num(t.promoted_at_s, '.0f')} s: challenger IC {num(ch.get('mean_ic'))} vs "
            f"champion {num(cp.get('mean_ic'))} on {ch.get('n_timestamps', '—')} unseen bars",
            f"engine hot-reloaded          bar {t.swap_cycle_ts} ({num(t.swap_at_s, '.0f')} s)",
            f"realised IC after the swap   {num(t.realised_ic_after_swap)} over {t.realised_cycles_after_swap} "
            f"bars (truth {t.truth_ic_after_flip:.4f})",
            f"feed held for retrains       {t.feed_held_s:.0f} s",
            f"last bar traded              {t.last_cycle_ts}; the story took {t.seconds:.0f} s",
            "sensor ticks                 " + "; ".join(f"{k}: {v}" for k, v in t.sensor_ticks.items()),
            "runs by reason               " + "; ".join(f"{k}: {len(v)}" for k, v in t.runs_by_reason.items()),
            f"partitions in Dagster        {t.partitions} of the lake's {t.lake_days} days",
        ]

    def to_dict(self) -> dict:
        return asdict(self)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Procs:
    """The story's subprocesses, each in its own process group, stopped together."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None and name != "engine":
                tail = (self.logs / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def graphql(base: str, query: str, variables: dict | None = None) -> dict:
    body = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, timeout=30).json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL: {body['errors']}")
    return body["data"]


def sensor_selector(name: str) -> dict:
    return {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "sensorName": name}


START_SENSOR = """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) {
  __typename ... on Sensor { sensorState { status } } ... on PythonError { message } } }"""
SENSOR_TICKS = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename ... on Sensor {
  name sensorState { status ticks(limit: 200) { status runIds skipReason } } } } }"""
PARTITION_STATS = """query($p: [String!]!) { assetNodeOrError(assetKey: {path: $p}) { __typename ... on AssetNode {
  partitionStats { numMaterialized numPartitions } } } }"""
RUNS_BY_TAG = """query($k: String!, $v: String!) { runsOrError(filter: {tags: [{key: $k, value: $v}]}) {
  __typename ... on Runs { results { runId status jobName tags { key value } } } } }"""


def runs_tagged(base: str, key: str, value: str) -> list[dict]:
    out = graphql(base, RUNS_BY_TAG, {"k": key, "v": value})["runsOrError"]["results"]
    return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in out]


UNFINISHED = frozenset({"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "MANAGED"})
"""Dagster run statuses of a run that has not ended yet."""


def retrain_in_flight(base: str) -> bool:
    """Whether a retrain requested on decay is queued or running."""
    return any(r["status"] in UNFINISHED for r in runs_tagged(base, "foxlake/reason", "decay"))


def _stamp(ts) -> str:
    return ts.strftime("%Y%m%dT%H%M%S")


def _ledger(results: Path, account: str, query: str, params: tuple = ()) -> list[tuple]:
    """``query``'s rows from the account's ledger (read-only), or none before the engine made it."""
    try:
        with LedgerReader(results, account) as r:
            return r.con.execute(query, params).fetchall()
    except (FileNotFoundError, sqlite3.OperationalError):  # not there yet, or created but its tables not yet visible
        return []


def _alias_rows(results: Path, alias: str) -> list[dict]:
    """The rows of ``alias`` that pointed it at a model, oldest first (``catalog.alias_file``)."""
    return [r for r in read_alias_file(results)[0] if r["alias"] == alias and r["model_dir"]]


def prepare_folder(root: Path) -> tuple[Path, Path, Path]:
    """``root``'s RESULTS, dagster_home and logs, emptied; a non-empty folder that no story made is refused."""
    if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
        raise FileExistsError(f"{root}: not empty and not a loop story's folder; name another (nothing was deleted)")
    shutil.rmtree(root, ignore_errors=True)
    results, home, logs = root / "RESULTS", root / "dagster_home", root / "logs"
    for d in (results, home, logs):
        d.mkdir(parents=True)
    (root / MARKER).write_text("made by foxlake demo --loop; emptied at each run\n")
    shutil.copyfile(REPO / "configs" / "dagster.yaml", home / "dagster.yaml")
    return results, home, logs


def run_story(
    root: str | Path,
    *,
    config_path: str | Path = LOOP_CONFIG,
    seconds_per_bar: float = 0.25,
    batch_bars: int = 12,
    bridge_port: int | None = None,
    dagster_port: int | None = None,
    say: Callable[[str], None] = print,
    timeout_s: float = 600.0,
    hold_for_retrain_s: float = 90.0,
) -> Timeline:
    """Run the closed loop's story in the folder ``root`` (see the module docstring and :func:`prepare_folder`);
    the measured timeline."""
    t0 = time.monotonic()
    cfg = load_run_config(config_path)
    engine_cfg = EngineConfig.model_validate(cfg.live)
    account = engine_cfg.account
    market = cfg.market
    if market.drift_at_bar is None or not market.live_bars:
        raise ValueError(f"{config_path}: market.drift_at_bar and market.live_bars are the story")
    results, home, logs = prepare_folder(Path(root).resolve())
    bars = make_market(market)
    history, live = split_history(bars, market)
    stamps = bars["ts"].unique().sort()
    flip_ts = stamps[market.drift_at_bar]
    truth = documented_ics(market.model_copy(update={"drift_at_bar": None}), 1, 0, "next_open")["cs_ic"]
    target = cfg.target_names()[0]
    tl = Timeline(flip_bar_ts=flip_ts.isoformat(), truth_ic_after_flip=truth)
    env = {**os.environ, "DAGSTER_HOME": str(home), "FOXLAKE_RESULTS": str(results),
           "FOXLAKE_CONFIG": str(config_path), "PYTHONPATH": str(REPO)}  # fmt: skip
    bin_dir = Path(sys.executable).parent
    port = dagster_port or _free_port()
    base = f"http://127.0.0.1:{port}"
    procs = _Procs(logs)

    def wait(what: str, cond: Callable[[], bool], limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while not cond():
            procs.check()
            if time.monotonic() > deadline or time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"the story waited {limit_s:.0f} s for {what}; logs in {logs}")
            time.sleep(0.2)

    try:
        say(f"[loop] dagster dev on {base} (DAGSTER_HOME {home}), RESULTS {results}")
        procs.start("dagster", [str(bin_dir / "dagster"), "dev", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)],
                    env)  # fmt: skip

        def sensors_loaded() -> bool:
            try:
                out = graphql(base, SENSOR_TICKS, {"s": sensor_selector(STARTED_SENSORS[0])})
            except (httpx.HTTPError, RuntimeError, ValueError):
                return False
            return out["sensorOrError"]["__typename"] == "Sensor"

        wait("the Dagster webserver and its code location", sensors_loaded, 180)
        for name in STARTED_SENSORS:
            graphql(base, START_SENSOR, {"s": sensor_selector(name)})
        say(f"[loop] sensors on: {', '.join(LOOP_SENSORS)}")

        land = landing_dir(results)
        write_landing_parquet(history, land / f"{_stamp(history['ts'].min())}-history.parquet")
        say(f"[loop] history landed: {history['ts'].n_unique()} bars × {history['symbol'].n_unique()} symbols")
        champion = f"champion.{target}"
        wait("the first training run and its champion", lambda: bool(_alias_rows(results, champion)), 300)
        tl.first_champion_at_s = time.monotonic() - t0
        say(f"[loop] first champion after {tl.first_champion_at_s:.0f} s; starting the engine")

        procs.start("engine", [str(bin_dir / "foxlake"), "--results", str(results), "live", "run", "--config",
                               str(config_path), "--follow", "--poll-seconds", "0.2", "--idle-exit-seconds", "120"],
                    env)  # fmt: skip
        if bridge_port:
            procs.start("bridge", [str(bin_dir / "foxlake"), "--results", str(results), "bridge", "serve", "--account",
                                   account, "--port", str(bridge_port)], env)  # fmt: skip
            say(f"[loop] dashboard: http://127.0.0.1:{bridge_port}/")

        live_stamps = live["ts"].unique().sort().to_list()
        by_batch = [live_stamps[i : i + batch_bars] for i in range(0, len(live_stamps), batch_bars)]
        swap_seen = detected_seen = promoted_seen = False
        for chunk in by_batch:
            t_hold = time.monotonic()
            while time.monotonic() - t_hold < hold_for_retrain_s and retrain_in_flight(base):
                procs.check()
                time.sleep(0.5)
            tl.feed_held_s += time.monotonic() - t_hold
            t_batch = time.monotonic()
            part = live.filter(pl.col("ts").is_between(chunk[0], chunk[-1]))
            write_landing_parquet(part, land / f"{_stamp(chunk[0])}-feed.parquet")
            if not detected_seen and _ledger(results, account, "select 1 from events where event_type = "
                                             "'decay_detected' limit 1"):  # fmt: skip
                detected_seen, tl.detected_at_s = True, time.monotonic() - t0
                say(f"[loop] decay detected ({tl.detected_at_s:.0f} s)")
            if not promoted_seen and len(_alias_rows(results, champion)) > 1:
                promoted_seen, tl.promoted_at_s = True, time.monotonic() - t0
                say(f"[loop] challenger promoted ({tl.promoted_at_s:.0f} s)")
            if not swap_seen and _ledger(results, account, "select 1 from model_swaps limit 1"):
                swap_seen, tl.swap_at_s = True, time.monotonic() - t0
                say(f"[loop] the engine hot-reloaded the new champion ({tl.swap_at_s:.0f} s)")
            procs.check()
            time.sleep(max(0.0, len(chunk) * seconds_per_bar - (time.monotonic() - t_batch)))
        last = live_stamps[-1].isoformat()
        say(f"[loop] the feed is done (last bar {last}); waiting for the engine to trade it")

        def traded_last() -> bool:
            rows = _ledger(results, account, "select max(ts) from cycles")
            return bool(rows and rows[0][0] and rows[0][0] >= last)

        wait("the engine's last bar", traded_last, 240)
        if not swap_seen and _ledger(results, account, "select 1 from model_swaps limit 1"):
            tl.swap_at_s = time.monotonic() - t0
        tl.decay_runs = [
            {"run_id": r["runId"], "status": r["status"], "tags": r["tags"]}
            for r in runs_tagged(base, "foxlake/reason", "decay")
        ]
        for reason in ("landing files", "new data", "decay"):
            tl.runs_by_reason[reason] = [r["status"] for r in runs_tagged(base, "foxlake/reason", reason)]
        for name in LOOP_SENSORS:
            found = graphql(base, SENSOR_TICKS, {"s": sensor_selector(name)})["sensorOrError"]
            if found["__typename"] != "Sensor":
                continue
            ticks = found["sensorState"]["ticks"]
            counts: dict[str, int] = {}
            for tick in ticks:
                counts[tick["status"]] = counts.get(tick["status"], 0) + 1
            tl.sensor_ticks[name] = counts
        for asset in ("bars", "features"):
            node = graphql(base, PARTITION_STATS, {"p": [asset]})["assetNodeOrError"]
            tl.partitions[asset] = node["partitionStats"]
        tl.lake_days = len(list((results / "lake" / "bars").glob("interval=*/date=*")))
        _measure(results, account, target, flip_ts.isoformat(), champion, tl, loop_config(cfg.loop).decay)
    finally:
        procs.stop()
        tl.seconds = time.monotonic() - t0
    return tl


def _measure(
    results: Path, account: str, target: str, flip: str, champion: str, tl: Timeline, decay: DecayConfig
) -> None:
    q = lambda sql, p=(): _ledger(results, account, sql, p)  # noqa: E731
    first = q("select min(ts) from cycles")
    tl.engine_first_cycle_ts = first[0][0] if first else None
    tl.last_cycle_ts = q("select max(ts) from cycles")[0][0]
    detected = q("select e.cycle_id, c.ts from events e join cycles c using (cycle_id) "
                 "where e.event_type = 'decay_detected' order by e.event_id limit 1")  # fmt: skip
    if detected:
        tl.detected_cycle_ts = detected[0][1]
        tl.detected_horizons_after_flip = q("select count(*) from realised_ic where ts >= ? and cycle_id <= ? "
                                            "and model not like '<%'", (flip, detected[0][0]))[0][0]  # fmt: skip
    swap = q("select min(cycle_id) from model_swaps")[0][0]
    first_model = q("select model from realised_ic where model not like '<%' order by cycle_id limit 1")
    champions = _alias_rows(results, champion)
    if len(champions) > 1 and champions[-1]["note"]:
        tl.promotion_note = json.loads(champions[-1]["note"])
    if first_model and champions:
        holdout = sql(results, "select mean_ic from models where model_dir = ?", [champions[0]["model_dir"]])
        rows = q("select cycle_id, ic, ts from realised_ic where model = ? and ic is not null and cycle_id < ? "
                 "order by cycle_id", (first_model[0][0], swap if swap is not None else 1 << 62))  # fmt: skip
        fired = first_detection([(c, ic) for c, ic, _ in rows], float(holdout["mean_ic"][0]), decay, horizon_bars=1)
        if fired is not None:
            tl.test_fires_after_horizons = sum(1 for c, _, ts in rows if ts >= flip and c <= fired)
    if swap is not None:
        tl.swap_cycle_ts = q("select ts from cycles where cycle_id = ?", (swap,))[0][0]
    old = q("select avg(ic) from realised_ic where ts < ? and model not like '<%'", (flip,))[0][0]
    old_after = q("select avg(ic) from realised_ic where ts >= ? and cycle_id < ? and model not like '<%'",
                  (flip, swap if swap is not None else 1 << 62))[0][0]  # fmt: skip
    tl.realised_ic_before_flip, tl.realised_ic_after_flip_old_model = old, old_after
    if swap is not None:
        row = q("select avg(ic), count(ic) from realised_ic where cycle_id >= ? and model not like '<%'", (swap,))[0]
        tl.realised_ic_after_swap, tl.realised_cycles_after_swap = row[0], row[1]
