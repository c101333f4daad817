"""One account's ledger as the bridge reads it: a read-only connection per server thread, and the views'
answers cached until the engine commits its next cycle.

Every view the dashboard polls (positions, risk, equity, orders, models) only changes when a cycle commits, so its
JSON is built once per cycle and served from memory until ``max(cycle_id)`` moves (one indexed lookup a request).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from bridge.ledger_views import last_cycle_id
from live.ledger.reader import LedgerReader
from live.ledger.schema import ledger_file


class NoLedger(LookupError):
    """No engine has written this account's ledger yet."""


class LedgerSource:
    """Read-only readers of ``RESULTS/live/<account>/ledger.sqlite``, one per thread, and a per-cycle cache."""

    def __init__(self, results: str | Path, account: str, cache: bool = True) -> None:
        self.results, self.account, self.cache = Path(results), account, cache
        self.path = ledger_file(results, account)
        self._local = threading.local()
        self._cache: dict[tuple, bytes] = {}
        self._lock = threading.Lock()

    def reader(self) -> LedgerReader:
        """This thread's reader (opened on first use; reopened when the ledger file was replaced).

        Raises:
            NoLedger: no ledger file yet.
        """
        try:
            ino = self.path.stat().st_ino
        except FileNotFoundError:
            raise NoLedger(f"no ledger for account {self.account!r} yet: no engine has run it") from None
        led = getattr(self._local, "reader", None)
        if led is None or self._local.ino != ino:
            if led is not None:
                led.close()
            led = LedgerReader(self.results, self.account)
            self._local.reader, self._local.ino = led, ino
        return led

    def version(self, led: LedgerReader) -> tuple[int, int]:
        """(ledger file inode, last committed cycle): what the cached views depend on."""
        return self._local.ino, last_cycle_id(led)

    def cached(self, key: tuple) -> bytes | None:
        """This cycle's JSON of ``key`` when it was built already (a file ``stat``, one indexed query), else None.

        Raises:
            NoLedger: no ledger file yet.
            LedgerUnreadable: SQLite cannot read it.
        """
        if not self.cache:
            return None
        led = self.reader()
        try:
            return self._cache.get((key, self.version(led)))
        except sqlite3.DatabaseError as exc:
            raise LedgerUnreadable(f"ledger unreadable: {exc}") from None

    def cached_json(self, key: tuple, build: Callable[[LedgerReader], BaseModel | list]) -> bytes:
        """The JSON of ``build(reader)`` for this cycle, built once per cycle and ``key``."""
        led = self.reader()
        try:
            full = (key, self.version(led))
            hit = self._cache.get(full) if self.cache else None
            if hit is not None:
                return hit
            value = build(led)
        except sqlite3.DatabaseError as exc:
            raise LedgerUnreadable(f"ledger unreadable: {exc}") from None
        body = to_json(value)
        with self._lock:
            if len(self._cache) > 256:  # old cycles' answers
                self._cache.clear()
            self._cache[full] = body
        return body


class LedgerUnreadable(RuntimeError):
    """The ledger file exists but SQLite cannot read it (corrupt, not a database)."""


def to_json(value: BaseModel | list[BaseModel]) -> bytes:
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    return b"[" + b",".join(v.model_dump_json().encode() for v in value) + b"]"
