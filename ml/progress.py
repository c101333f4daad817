"""Training progress events in the ``/ws/training`` contract's shape, appended where a bridge can read them.

Events go to ``RESULTS/training/events.jsonl`` (one JSON object per line, each validated against
``contracts.bridge.TrainingEvent``). Steps emit ``stage_change`` at stage boundaries, ``progress`` as work
completes and at least every ``heartbeat_seconds`` during long loops, ``target_complete``,
``run_complete`` and ``error``. Around a long step, :meth:`TrainingProgress.heartbeat` repeats the step's last
``progress`` numbers whenever ``heartbeat_seconds`` (10) pass without an event (contract rule 3: at least every 30 s).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contracts.bridge import TrainingEvent, utc_now_iso

EVENTS = Path("training") / "events.jsonl"


def training_events_path(results: str | Path) -> Path:
    return Path(results) / EVENTS


class TrainingProgress:
    """Emits training events for one run (``run_id`` is the manifest's run_id)."""

    def __init__(self, results: str | Path, run_id: str, run_instance_id: str, heartbeat_seconds: float = 10.0):
        self.path = training_events_path(results)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self.run_instance_id = run_instance_id
        self.heartbeat_seconds = heartbeat_seconds
        self._last = 0.0
        self._lock = threading.Lock()  # ranking and training emit from several threads
        self._numbers: dict[str, Any] = {}  # the last stage/progress event's numbers, repeated by heartbeats

    def emit(self, event_type: str, **fields: Any) -> None:
        ev = TrainingEvent(
            event_type=event_type,
            timestamp=utc_now_iso(),
            run_id=self.run_id,
            run_instance_id=self.run_instance_id,
            **fields,
        )
        line = json.dumps(ev.model_dump(exclude_none=True), sort_keys=True)
        if event_type in ("stage_change", "progress"):
            keys = ("stage", "progress_pct", "current_target", "targets_complete", "targets_total")
            self._numbers = {k: fields[k] for k in keys if fields.get(k) is not None}
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            self._last = time.monotonic()

    def stage(self, stage: str, targets_total: int, targets_complete: int = 0) -> None:
        self.emit(
            "stage_change",
            stage=stage,
            progress_pct=100.0 * targets_complete / max(targets_total, 1),
            targets_complete=targets_complete,
            targets_total=targets_total,
        )

    def progress(
        self, stage: str, done: int, total: int, current_target: str | None = None, force: bool = True, **extra: Any
    ) -> None:
        """A ``progress`` event (skipped when ``force`` is False and the last event is recent)."""
        if not force and time.monotonic() - self._last < self.heartbeat_seconds:
            return
        self.emit(
            "progress",
            stage=stage,
            progress_pct=min(100.0, 100.0 * done / max(total, 1)),
            current_target=current_target,
            targets_complete=done,
            targets_total=total,
            **extra,
        )

    @contextmanager
    def heartbeat(self, stage: str) -> Iterator[None]:
        """While the block runs, a ``progress`` event of ``stage`` (the last numbers it emitted, ``message``
        "heartbeat: …") whenever ``heartbeat_seconds`` pass without any event; stops with the block."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(min(1.0, self.heartbeat_seconds / 4)):
                if time.monotonic() - self._last >= self.heartbeat_seconds:
                    numbers = self._numbers if self._numbers.get("stage") == stage else {"stage": stage}
                    self.emit("progress", **numbers, message=f"heartbeat: {stage} still running")

        thread = threading.Thread(target=beat, name="training-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


class StageCounter:
    """Counts the items of one stage as they complete (from any thread) and emits a ``progress`` event for each."""

    def __init__(self, progress: TrainingProgress | None, stage: str, total: int) -> None:
        self.progress, self.stage, self.total = progress, stage, total
        self.done = 0
        self._lock = threading.Lock()

    def complete(self, current_target: str | None, force: bool = True) -> None:
        """One more item done (no event without a ``progress``)."""
        with self._lock:
            self.done += 1
            if self.progress:
                self.progress.progress(self.stage, self.done, self.total, current_target=current_target, force=force)


def read_training_events(results: str | Path, after_line: int = 0) -> list[dict[str, Any]]:
    path = training_events_path(results)
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh.readlines()[after_line:] if line.strip()]
