"""The engine's published state: a state journal and an event log another process (the bridge) reads.

``RESULTS/live/state.json`` is rewritten atomically at every stage change; ``RESULTS/live/events.jsonl``
gets one JSON event per line (contract: /ws/events), appended and flushed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from contracts.bridge import EngineEvent, EngineState, utc_now_iso
from contracts.io import read_json, write_atomic_json

STATE_FILE = "state.json"
EVENTS_FILE = "events.jsonl"


def live_dir(results: str | Path) -> Path:
    return Path(results) / "live"


class StateJournal:
    """Publishes engine state and events under ``RESULTS/live``."""

    def __init__(self, results: str | Path) -> None:
        self.directory = live_dir(results)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.started_monotonic = time.monotonic()
        self.state: dict[str, Any] = {
            "status": "running",
            "current_stage": "idle",
            "last_cycle": None,
            "uptime_seconds": 0.0,
            "cycle_count": 0,
            "symbols_active": 0,
            "started_at": utc_now_iso(),
            "pid": os.getpid(),
        }

    def update(self, **fields: Any) -> None:
        """Change state fields and publish the whole state atomically."""
        self.state.update(fields)
        self.state["uptime_seconds"] = time.monotonic() - self.started_monotonic
        self.state["updated_at"] = utc_now_iso()
        EngineState.model_validate(self.state)
        write_atomic_json(self.directory / STATE_FILE, self.state)

    def event(self, event_type: str, message: str, severity: str = "info", **data: Any) -> None:
        """Append one event (validated against the /ws/events contract)."""
        ev = EngineEvent(event_type=event_type, timestamp=utc_now_iso(), severity=severity, message=message, data=data)
        with open(self.directory / EVENTS_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(ev.model_dump(), sort_keys=True, default=str) + "\n")
            fh.flush()


def read_state(results: str | Path) -> dict[str, Any] | None:
    """The last published state, or ``None`` when no engine has run."""
    path = live_dir(results) / STATE_FILE
    return read_json(path) if path.exists() else None


def read_events(results: str | Path, after_line: int = 0) -> list[dict[str, Any]]:
    """Events from line ``after_line`` on (0-based)."""
    path = live_dir(results) / EVENTS_FILE
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    return [json.loads(line) for line in lines[after_line:] if line.strip()]
