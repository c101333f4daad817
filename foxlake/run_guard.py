"""Runs that cannot hang: a materialization from the CLI never waits forever for a pool slot a dead run holds.

A run that is SIGKILLed while it holds a Dagster concurrency-pool slot (e.g. ``catalog_writer``) leaves the slot
claimed in the instance's storage; Dagster's in-process executor then waits for it indefinitely, and does so under
its own interrupt capture, so SIGINT and SIGTERM do not stop it. The CLI therefore:

* tags every run it starts with its process (pid, start time, host: :func:`owner_tags`);
* before a run, and while one waits, frees the slots of runs whose process is gone (:func:`reap_dead_runs`),
  marking them failed, and the slots of runs that already ended;
* runs the materialization in a worker thread, so Dagster does not capture the main thread's signals: SIGINT and
  SIGTERM stop the command at once (its step processes are terminated, its run is marked failed and its slots
  freed);
* reports what it waits for, every ``report_every_seconds``, and gives up after ``wait_limit_seconds`` with an
  error naming the pool and the run that holds it.

Runs started by the Dagster daemon or the UI are covered by the instance's run monitoring (``dagster.yaml``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field

PID_TAG = "foxlake/pid"
PID_START_TAG = "foxlake/pid_start"
HOST_TAG = "foxlake/host"
LAUNCH_TAG = "foxlake/launch"
_ACTIVE = (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED)


class RunGuardConfig(BaseModel):
    """How long the CLI waits for a pool slot a live run holds.

    Attributes:
        wait_limit_seconds: give up, with an error naming the pool and the holder, after waiting this long (600).
        report_every_seconds: say what it waits for this often (10).
        poll_seconds: how often the wait checks the pools and the holders (1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    wait_limit_seconds: float = Field(600.0, gt=0)
    report_every_seconds: float = Field(10.0, gt=0)
    poll_seconds: float = Field(1.0, gt=0)


class PoolWaitTimeout(RuntimeError):
    """A pool slot stayed held by a live run for longer than the configured limit."""


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid from the original."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_tags() -> dict[str, str]:
    """Tags naming this process as the run's owner."""
    pid = os.getpid()
    return {PID_TAG: str(pid), PID_START_TAG: _process_start(pid) or "", HOST_TAG: socket.gethostname()}


def _owner_alive(tags: dict[str, str]) -> bool | None:
    """Whether the process that started a run still runs (``None``: not a run this host's CLI started)."""
    if tags.get(HOST_TAG) != socket.gethostname() or PID_TAG not in tags:
        return None
    try:
        pid = int(tags[PID_TAG])
        os.kill(pid, 0)
    except ValueError:
        return None
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = tags.get(PID_START_TAG)
    return not started or _process_start(pid) == started


def reap_dead_runs(instance: dg.DagsterInstance, out: TextIO = sys.stderr) -> list[str]:
    """Free the pool slots (held or queued for) of runs whose owner process is gone (marking them failed) or that
    already ended.

    Returns:
        The run ids whose slots were freed.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders = set()
    for key in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(key)
        # a dead run's queued steps block the queue too: a freed slot would be assigned to them
        holders |= {s.run_id for s in info.claimed_slots} | {p.run_id for p in info.pending_steps}
    reaped = []
    for run_id in sorted(holders):
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in _ACTIVE:
            if _owner_alive(run.tags) is not False:
                continue  # alive, or not ours to judge (run monitoring handles daemon-launched runs)
            instance.report_run_failed(run, f"its process (pid {run.tags.get(PID_TAG)}) is gone; pool slots freed")
        storage.free_concurrency_slots_for_run(run_id)
        reaped.append(run_id)
        print(f"foxlake: freed the pool slots held by dead run {run_id}", file=out, flush=True)
    return reaped


def free_run(instance: dg.DagsterInstance, run_id: str) -> None:
    """Mark a run failed (if it has not ended) and free its pool slots: for a run whose process is known gone.

    Raises:
        KeyError: no such run.
    """
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise KeyError(f"no Dagster run {run_id!r} in this instance")
    if run.status in _ACTIVE:
        instance.report_run_failed(run, "freed by `foxlake runs free`: its process is gone")
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def _waiting_on(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, list[str]]]:
    """(pool, holder run ids) for every pool in which ``run_id`` waits for a slot."""
    storage = instance.event_log_storage
    out = []
    for key in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(key)
        held = {s.run_id for s in info.claimed_slots} | {p.run_id for p in info.pending_steps if p.assigned_timestamp}
        mine = [p for p in info.pending_steps if p.run_id == run_id]
        if run_id not in held and mine:
            ahead = {p.run_id for p in info.pending_steps if p.enqueued_timestamp < mine[0].enqueued_timestamp}
            out.append((key, sorted((held | ahead) - {run_id})))
    return out


def guarded_run(
    instance: dg.DagsterInstance,
    launch: Callable[[dict[str, str]], Any],
    cfg: RunGuardConfig | None = None,
    out: TextIO = sys.stderr,
) -> Any:
    """Call ``launch(tags)`` (a materialization that tags its run with ``tags``) in a worker thread, guarding the
    wait for pool slots (module docstring). Returns what ``launch`` returns.

    Raises:
        PoolWaitTimeout: a live run held a slot the run needs for longer than ``cfg.wait_limit_seconds``.
        KeyboardInterrupt: on SIGINT or SIGTERM.
    In both cases the run is marked failed and its slots are freed; the worker thread is abandoned (the caller
    exits the process).
    """
    cfg = cfg or RunGuardConfig()
    reap_dead_runs(instance, out)
    tags = {**owner_tags(), LAUNCH_TAG: uuid.uuid4().hex}
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = launch(tags)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            result["error"] = exc

    thread = threading.Thread(target=work, name="foxlake-materialize", daemon=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    waited = 0.0
    last_report = -cfg.report_every_seconds
    try:
        thread.start()
        while thread.is_alive():
            thread.join(cfg.poll_seconds)
            run = _our_run(instance, tags[LAUNCH_TAG])
            blocked = _waiting_on(instance, run.run_id) if run is not None else []
            if not blocked:
                waited = 0.0
                continue
            if reap_dead_runs(instance, out):
                continue
            waited += cfg.poll_seconds
            if waited - last_report >= cfg.report_every_seconds:
                last_report = waited
                for pool, holders in blocked:
                    print(
                        f"foxlake: waiting for a slot of pool {pool!r}, held by run(s) {', '.join(holders)}; "
                        f"{waited:.0f}s of at most {cfg.wait_limit_seconds:.0f}s",
                        file=out,
                        flush=True,
                    )
            if waited >= cfg.wait_limit_seconds:
                pool, holders = blocked[0]
                raise PoolWaitTimeout(
                    f"gave up after {waited:.0f}s waiting for a slot of pool {pool!r}, held by run(s) "
                    f"{', '.join(holders)}; wait for it to finish, or, if its process is gone, "
                    f"`foxlake runs free {holders[0]}`"
                )
    except BaseException:
        _abandon(instance, tags[LAUNCH_TAG])
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if "error" in result:
        raise result["error"]
    return result.get("value")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signo: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signo).name}")


def _our_run(instance: dg.DagsterInstance, launch_id: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={LAUNCH_TAG: launch_id}), limit=1)
    return runs[0] if runs else None


def _abandon(instance: dg.DagsterInstance, launch_id: str) -> None:
    """Stop the run's step processes, mark the run failed and free its slots: the process is about to exit under it."""
    for step in multiprocessing.active_children():
        step.terminate()
    run = _our_run(instance, launch_id)
    if run is not None:
        free_run(instance, run.run_id)
