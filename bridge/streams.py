"""The websocket feeds: the engine's events (the ledger's ``events`` table) and the training events
(``RESULTS/training/events.jsonl``), each tailed by one poller that every client of the feed shares.

A feed keeps its newest messages in memory, each with a sequence number (``event_id`` for engine events, the line
number for training events) and its JSON text, serialised once. A client asks for what comes after a sequence
number (a resume) or for the recent ones, then waits for the poller's next batch: nothing is lost or sent twice
across a reconnect, and a hundred clients cost one query per poll.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from contracts.bridge import EngineEvent, TrainingEvent
from live.ledger.schema import ledger_file
from ml.progress import training_events_path

KEEP = 5000
"""Messages a feed keeps in memory; a resume from further back reads the source again."""


class Feed:
    """Messages in sequence order, with an asyncio condition clients wait on."""

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self.seqs: list[int] = []
        self.texts: list[str] = []
        self.changed = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.error: str | None = None

    def read(self, after: int, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` messages after ``after`` from the source, oldest first."""
        raise NotImplementedError

    def poll(self) -> list[tuple[int, str]]:
        """The messages the source got since the last poll."""
        return self.read(self.last, 10_000)

    def recent_start(self, recent: int) -> int:
        """The sequence number a new client without a resume point starts after."""
        return self.seqs[-recent - 1] if len(self.seqs) > recent else (self.seqs[0] - 1 if self.seqs else 0)

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None

    async def _poll(self) -> None:
        while True:
            try:
                new = await asyncio.to_thread(self.poll)
                self.error = None
            except (OSError, sqlite3.Error, ValueError) as exc:  # no ledger yet, or a half-written line
                new, self.error = [], f"{type(exc).__name__}: {exc}"
            if new:
                for seq, text in new:
                    self.seqs.append(seq)
                    self.texts.append(text)
                if len(self.seqs) > KEEP:
                    del self.seqs[: len(self.seqs) - KEEP], self.texts[: len(self.texts) - KEEP]
                self.changed.set()
                self.changed = asyncio.Event()
            await asyncio.sleep(self.poll_s)

    async def after(self, seq: int) -> list[tuple[int, str]]:
        """Messages after ``seq`` (from memory, or from the source when ``seq`` is older than memory).

        A resume from further back than memory gets the source's next ``KEEP`` messages after ``seq`` (in order,
        none skipped) and the caller asks again after the last of them, until it reaches memory: a gap between
        ``seq`` and memory longer than ``KEEP`` is read in pieces, never skipped."""
        if self.seqs and seq < self.seqs[0] - 1:
            older = await asyncio.to_thread(self.read, seq, KEEP)
            if older:
                return older
            # the source has nothing after ``seq`` (replaced, or unreadable for now): go on from memory
        i = bisect.bisect_right(self.seqs, seq)
        return list(zip(self.seqs[i:], self.texts[i:], strict=True))


class EngineEventFeed(Feed):
    """``/ws/events``: every row of the account's ledger ``events`` table as an :class:`EngineEvent` message plus
    its ``event_id`` and ``cycle_id``."""

    def __init__(self, results: str | Path, account: str, poll_s: float = 0.02) -> None:
        super().__init__(poll_s)
        self.path = ledger_file(results, account)
        self._con: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the poller and a resume from further back read from worker threads

    def read(self, after: int, limit: int) -> list[tuple[int, str]]:
        with self._lock:
            if self._con is None:
                if not self.path.exists():
                    return []
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._con = sqlite3.connect(uri, uri=True, check_same_thread=False)
            rows = self._con.execute(
                "select event_id, cycle_id, ts, event_type, severity, message, data_json from events "
                "where event_id > ? order by event_id limit ?",
                (after, limit),
            ).fetchall()
        return [(r[0], event_message(*r)) for r in rows]


def event_message(event_id, cycle_id, ts, event_type, severity, message, data_json) -> str:
    """The websocket text of one ledger event (validated against the contract)."""
    ev = EngineEvent(
        event_type=event_type, timestamp=ts, severity=severity, message=message, data=json.loads(data_json)
    )
    return json.dumps({**ev.model_dump(), "event_id": event_id, "cycle_id": cycle_id}, sort_keys=True)


class TrainingEventFeed(Feed):
    """``/ws/training``: the training events file, one message per line; the sequence number is the line number
    (1-based). A line still being written is read at the next poll."""

    def __init__(self, results: str | Path, poll_s: float = 0.1) -> None:
        super().__init__(poll_s)
        self.path = training_events_path(results)
        self._offset = 0  # bytes of the file polled so far
        self._line = 0  # lines of the file polled so far

    def read(self, after: int, limit: int) -> list[tuple[int, str]]:
        return [m for m in _lines(self.path, 0)[0] if m[0] > after][:limit]

    def poll(self) -> list[tuple[int, str]]:
        lines, self._offset, self._line = _lines(self.path, self._offset, self._line)
        return lines

    def run_start(self) -> int:
        """The sequence number before the newest run's first event (a new client is sent that run)."""
        if not self.texts:
            return 0
        last = json.loads(self.texts[-1])
        key = (last.get("run_id"), last.get("run_instance_id"))
        start = len(self.texts) - 1
        while start > 0:
            prev = json.loads(self.texts[start - 1])
            if (prev.get("run_id"), prev.get("run_instance_id")) != key:
                break
            start -= 1
        return self.seqs[start] - 1


def _lines(path: Path, offset: int, first_line: int = 0) -> tuple[list[tuple[int, str]], int, int]:
    """Complete lines from byte ``offset`` as (line number, JSON text with ``seq``), the byte offset and the line
    number after them. A line that is not a valid training event is skipped (its number stays unused)."""
    if not path.exists():
        return [], offset, first_line
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    out = []
    n = first_line
    for raw in data[:end].splitlines():
        n += 1
        try:
            doc: dict[str, Any] = TrainingEvent.model_validate_json(raw).model_dump(exclude_none=True)
        except ValueError:
            continue
        out.append((n, json.dumps({**doc, "seq": n}, sort_keys=True)))
    return out, offset + end, n
