"""A terminal progress bar that follows the training events a run writes (RESULTS/training/events.jsonl)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from ml.progress import read_training_events, training_events_path

WIDTH = 30


class ProgressView:
    """Prints the training events of runs started after it was created, moving only forward: per stage, a bar line
    when its share done grows (several ops of one stage report their own counts; the view keeps the highest), and
    on a stream that is not a terminal only a stage's start and its end, one line each."""

    def __init__(self, results: Path, stream=sys.stdout, poll_seconds: float = 0.5) -> None:
        self.results = results
        self.stream = stream
        self.poll_seconds = poll_seconds
        path = training_events_path(results)
        self.offset = sum(1 for _ in open(path, encoding="utf-8")) if path.exists() else 0
        self._last = ""
        self._done: dict[str, float] = {}  # stage -> the highest share done shown
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProgressView:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._drain()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._drain()

    def _drain(self) -> None:
        events = read_training_events(self.results, self.offset)
        self.offset += len(events)
        for ev in events:
            if not self._forward(ev):
                continue
            line = render(ev)
            if line != self._last:
                self.stream.write(line + "\n")
                self._last = line
        self.stream.flush()

    def _forward(self, ev: dict) -> bool:
        """Whether ``ev`` moves its stage forward (and, off a terminal, starts or ends it)."""
        if ev["event_type"] not in ("progress", "stage_change"):
            return True
        stage, pct = ev.get("stage") or "", float(ev.get("progress_pct") or 0.0)
        seen = self._done.get(stage)
        if seen is not None and pct <= seen:
            return False
        self._done[stage] = pct
        return self._tty or seen is None or pct >= 100.0


def render(ev: dict) -> str:
    """``      [##########....................]  33% ranking  fwd_ret_5m``"""
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
