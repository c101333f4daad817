"""The engine's connection to its ledger: the only writer (the CLI and the bridge only append commands)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from contracts.bridge import utc_now_iso
from live.ledger import decisions as decision_record
from live.ledger.schema import DDL, SCHEMA_VERSION, ledger_file

BUSY_TIMEOUT_MS = 10_000


def open_rw(path: Path) -> sqlite3.Connection:
    """A read-write connection in WAL mode with ``synchronous=FULL`` (a committed cycle survives a power cut)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    con.execute("pragma journal_mode=wal")
    con.execute("pragma synchronous=full")
    con.execute(f"pragma busy_timeout={BUSY_TIMEOUT_MS}")
    return con


def _create(path: Path) -> None:
    """Create the ledger with its schema under a temporary name, then move it into place: a reader never finds a
    ledger without its tables."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    con = open_rw(tmp)
    try:
        con.executescript(DDL)
        con.execute("insert into meta values ('schema_version', ?)", (str(SCHEMA_VERSION),))
    finally:
        con.close()  # the last connection checkpoints and removes the WAL files
    os.replace(tmp, path)


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``begin immediate`` … ``commit``; a rollback on any exception (the connection is in autocommit mode)."""
    con.execute("begin immediate")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def _statements(script: str) -> list[str]:
    """The statements of an SQL script, one by one (``executescript`` would commit the open transaction)."""
    out, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    return out


def _column(traces: list[dict], get) -> np.ndarray:
    """One number of every trace (NaN where it is null or absent)."""
    return np.array([np.nan if (v := get(t)) is None else v for t in traces], dtype=float)


def _upgrade_to_4(con: sqlite3.Connection) -> None:
    """Schema 2 or 3 to 4 (inside the caller's transaction): ``model_swaps`` (3); the per-symbol ``decisions`` rows
    folded into one ``cycle_decisions`` row per cycle (their traces held every model's score, so the per-symbol
    ``predictions`` table goes too), the views in their place."""
    rows = con.execute("select cycle_id, symbol, action, reason, trace_json from decisions order by cycle_id, symbol")
    by_cycle: dict[int, list[tuple]] = {}
    for row in rows.fetchall():
        by_cycle.setdefault(row[0], []).append(row[1:])
    folded = []
    for cycle_id, decided in by_cycle.items():
        traces = [json.loads(t) for *_, t in decided]
        models = list(dict.fromkeys(k for t in traces for k in (t.get("prediction") or {})))
        blends = list(dict.fromkeys(k for t in traces for k in (t.get("blend") or {})))

        folded.append(
            (
                cycle_id,
                *decision_record.encode(
                    [d[0] for d in decided],
                    [d[1] for d in decided],
                    [d[2] for d in decided],
                    {k: _column(traces, lambda t, k=k: (t.get("prediction") or {}).get(k)) for k in models},
                    {k: _column(traces, lambda t, k=k: (t.get("blend") or {}).get(k)) for k in blends},
                    {name: _column(traces, lambda t, name=name: t.get(name)) for name in decision_record.STAGES},
                    np.array([t.get("gate") or "" for t in traces], dtype=object),
                    [[c] if (c := (t.get("risk") or {}).get("cuts")) else [] for t in traces],
                    _column(traces, lambda t: t.get("order_qty")),
                ),
            )
        )
    con.execute("drop table decisions")
    con.execute("drop table if exists predictions")
    for statement in _statements(DDL):
        con.execute(statement)
    con.executemany("insert into cycle_decisions values (?, ?, ?, ?)", folded)
    con.execute("update meta set value = ? where key = 'schema_version'", (str(SCHEMA_VERSION),))


class LedgerWriter:
    """Writes cycles, one transaction each (:meth:`cycle`)."""

    def __init__(self, results: str | Path, account: str) -> None:
        self.path = ledger_file(results, account)
        if not self.path.exists():
            _create(self.path)
        self.con = open_rw(self.path)
        have = self.meta("schema_version")
        if have is not None and int(have) in (2, 3):  # upgraded in place, in one transaction
            with transaction(self.con):
                _upgrade_to_4(self.con)
            have = self.meta("schema_version")
        if have is None or int(have) != SCHEMA_VERSION:
            raise ValueError(f"{self.path}: ledger schema {have}, this engine writes {SCHEMA_VERSION}")

    def close(self) -> None:
        self.con.close()

    def meta(self, key: str) -> str | None:
        row = self.con.execute("select value from meta where key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute("insert or replace into meta values (?, ?)", (key, value))

    def cycle(self):
        """One transaction: everything written inside commits together or not at all."""
        return transaction(self.con)

    def last_cycle(self) -> tuple[int, str, dict[str, Any]] | None:
        """(cycle_id, ts, engine state) of the last committed cycle."""
        row = self.con.execute("select cycle_id, ts, state_json from cycles order by cycle_id desc limit 1").fetchone()
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def event(self, cycle_id: int | None, event_type: str, message: str, severity: str = "info", **data: Any) -> None:
        self.con.execute(
            "insert into events (cycle_id, ts, event_type, severity, message, data_json) values (?, ?, ?, ?, ?, ?)",
            (cycle_id, utc_now_iso(), event_type, severity, message, json.dumps(data, sort_keys=True, default=str)),
        )

    def pending_commands(self) -> list[tuple[int, str, str]]:
        return self.con.execute(
            "select command_id, command, reason from commands where applied_cycle is null order by command_id"
        ).fetchall()

    def insert_many(self, table: str, rows: Iterable[tuple]) -> None:
        rows = list(rows)
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            self.con.executemany(f"insert into {table} values ({marks})", rows)


def append_event(
    results: str | Path, account: str, event_type: str, message: str, severity: str = "info", **data: Any
) -> int:
    """Append an event from outside the engine (a sensor's finding) to the ledger's event stream; its id.

    The row carries the last committed cycle's id; the engine's own writes are not touched (SQLite serialises the
    two writers; this one holds its lock for one insert).

    Raises:
        FileNotFoundError: no ledger for ``account``.
    """
    path = ledger_file(results, account)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no ledger for account {account!r}")
    con = open_rw(path)
    try:
        row = con.execute("select max(cycle_id) from cycles").fetchone()
        cur = con.execute(
            "insert into events (cycle_id, ts, event_type, severity, message, data_json) values (?, ?, ?, ?, ?, ?)",
            (row[0], utc_now_iso(), event_type, severity, message, json.dumps(data, sort_keys=True, default=str)),
        )
        return int(cur.lastrowid)
    finally:
        con.close()


def append_command(results: str | Path, account: str, command: str, reason: str) -> int:
    """Queue a control command for the engine (applied at its next cycle boundary); its id.

    Raises:
        FileNotFoundError: no ledger for ``account`` (no engine has run it).
        ValueError: an unknown command or an empty reason.
    """
    if command not in ("pause", "resume", "kill", "reset"):
        raise ValueError(f"unknown command {command!r}: pause, resume, kill or reset")
    if not reason.strip():
        raise ValueError("a command needs a --reason")
    path = ledger_file(results, account)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no ledger for account {account!r}; start it with `foxlake live run`")
    con = open_rw(path)
    try:
        cur = con.execute(
            "insert into commands (created_at, command, reason) values (?, ?, ?)", (utc_now_iso(), command, reason)
        )
        return int(cur.lastrowid)
    finally:
        con.close()
