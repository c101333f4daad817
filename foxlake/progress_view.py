"""The progress of a training run on the terminal, from the training events it writes (RESULTS/training/events.jsonl).

On a terminal: a live display (``rich``), one bar per stage (ranking, feature selection, training) and one for the
whole run, each only moving forward: several ops of one stage report their own counts (the training groups run in
processes of their own), the display keeps the highest. The targets print above it as they complete.

Off a terminal (a pipe, a log file, CI): one line when a stage starts and one when it ends, in the same words, and the
targets as they complete; nothing is redrawn.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from ml.progress import read_training_events, training_events_path

STAGES = ("ranking", "feature_selection", "training")
"""The stages a run reports, in order; the whole run's bar is their mean."""
WIDTH = 30
OVERALL = "whole run"


class ProgressView:
    """Shows the training events of runs started after it was created (see the module docstring)."""

    def __init__(self, results: Path, stream=sys.stdout, poll_seconds: float = 0.5) -> None:
        self.results = results
        self.stream = stream
        self.poll_seconds = poll_seconds
        path = training_events_path(results)
        self.offset = sum(1 for _ in open(path, encoding="utf-8")) if path.exists() else 0
        self._done: dict[str, float] = {}  # stage -> the highest share done shown
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._console = Console(file=stream, force_terminal=self._tty, highlight=False, soft_wrap=True)
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        if self._tty:
            self._bars = Progress(
                TextColumn("      {task.description:<18}"),
                BarColumn(bar_width=WIDTH),
                TextColumn("{task.percentage:5.1f}%"),
                TextColumn("{task.fields[detail]}"),
                console=self._console,
                auto_refresh=False,
            )
            for name in (*STAGES, OVERALL):
                self._tasks[name] = self._bars.add_task(name, total=100.0, detail="")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProgressView:
        if self._bars:
            self._bars.start()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._drain()
        if self._bars:
            self._bars.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._drain()

    def _drain(self) -> None:
        events = read_training_events(self.results, self.offset)
        self.offset += len(events)
        for ev in events:
            if ev["event_type"] in ("progress", "stage_change"):
                self._advance(ev)
            else:
                self._console.print(render(ev), markup=False)
        if self._bars:
            self._bars.refresh()
        self.stream.flush()

    def _advance(self, ev: dict) -> None:
        """Move ``ev``'s stage forward (never back); off a terminal, say when it starts and when it ends."""
        stage, pct = ev.get("stage") or "", float(ev.get("progress_pct") or 0.0)
        seen = self._done.get(stage)
        if seen is not None and pct <= seen:
            return
        self._done[stage] = pct
        if not self._bars:
            if seen is None or pct >= 100.0:
                self._console.print(render(ev), markup=False)
            return
        detail = ev.get("current_target") or ""
        if ev.get("targets_total"):
            detail = f"{detail} ({ev.get('targets_complete', 0)}/{ev['targets_total']})".strip()
        if stage not in self._tasks:
            self._tasks[stage] = self._bars.add_task(stage, total=100.0, detail="")
        self._bars.update(self._tasks[stage], completed=pct, detail=detail)
        overall = sum(self._done.get(s, 0.0) for s in STAGES) / len(STAGES)
        self._bars.update(self._tasks[OVERALL], completed=overall, detail="")


def render(ev: dict) -> str:
    """One event as a line: ``      [##########....................]  33.3% ranking fwd_ret_5m``."""
    kind = ev["event_type"]
    if kind in ("progress", "stage_change"):
        pct = ev.get("progress_pct") or 0.0
        filled = int(round(WIDTH * pct / 100))
        what = ev.get("current_target") or ("started" if kind == "stage_change" else "")
        return f"      [{'#' * filled}{'.' * (WIDTH - filled)}] {pct:5.1f}% {ev.get('stage', '')} {what}".rstrip()
    if kind == "target_complete":
        status = ev.get("message", ev.get("status"))
        return f"      target {ev['target']}: {status}, {ev.get('models_trained', 0)} model(s)"
    if kind == "run_complete":
        return f"      run complete: {ev.get('targets_complete', 0)} target(s) trained"
    return f"      {kind}: {ev.get('message', '')}"
