"""Read-only access to a ledger from another process (the bridge, the sensors, ``foxlake live status|report``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import polars as pl

from live.ledger.schema import ledger_file


class LedgerReader:
    """A read-only connection (``mode=ro``) that never blocks the engine's writes (WAL)."""

    def __init__(self, results: str | Path, account: str) -> None:
        self.path = ledger_file(results, account)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no ledger for account {account!r}")
        self.con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        self.con.execute("pragma busy_timeout=10000")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frame(self, query: str, params: tuple = ()) -> pl.DataFrame:
        """One query's rows as a polars frame (one read transaction)."""
        cur = self.con.execute(query, params)
        cols = [d[0] for d in cur.description]
        rows = cur.fetchall()
        return pl.DataFrame([dict(zip(cols, r, strict=True)) for r in rows], schema=cols if not rows else None)

    def one(self, query: str, params: tuple = ()) -> dict[str, Any] | None:
        cur = self.con.execute(query, params)
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))

    def meta(self) -> dict[str, str]:
        return dict(self.con.execute("select key, value from meta").fetchall())
