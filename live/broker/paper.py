"""The paper broker: market orders fill at the next bar's open with slippage and fees, capped at a share of that
bar's volume (the rest is cancelled); its book (orders, fills, positions, cash) lives in its own SQLite file, so
it survives the engine and can disagree with it (which reconciliation then finds)."""

from __future__ import annotations

import math
from pathlib import Path

from live.broker.base import Fill, Order
from live.config import BrokerConfig
from live.ledger.writer import open_rw, transaction

_DDL = """
create table if not exists meta (key text primary key, value text not null);
create table if not exists orders (
    client_order_id text primary key, symbol text not null, qty real not null, reduce_only integer not null,
    submitted_ts text not null, status text not null, filled_qty real not null default 0, note text
);
create table if not exists fills (
    seq integer primary key autoincrement, fill_id text not null unique, client_order_id text not null,
    symbol text not null, ts text not null, qty real not null, price real not null, fee real not null,
    requested_qty real not null
);
create index if not exists fills_ts on fills (ts);
create table if not exists positions (symbol text primary key, qty real not null);
"""


class PaperBroker:
    """A simulated venue with a durable book at ``path`` (``RESULTS/live/<account>/broker.sqlite``)."""

    def __init__(self, path: str | Path, cfg: BrokerConfig) -> None:
        self.cfg = cfg
        self.con = open_rw(Path(path))
        # a simulated venue's book: WAL without an fsync per commit survives a killed process (what the crash test
        # does); a power cut may lose its newest transaction, which the engine's reconciliation then reports
        self.con.execute("pragma synchronous=normal")
        self.con.executescript(_DDL)
        self.con.execute("insert or ignore into meta values ('cash', ?)", (repr(cfg.initial_cash),))
        self.con.execute("insert or ignore into meta values ('last_bar_ts', '')")

    def close(self) -> None:
        self.con.close()

    def submit(self, orders: list[Order]) -> None:
        if not orders:
            return
        with transaction(self.con):
            self.con.executemany(
                "insert or ignore into orders (client_order_id, symbol, qty, reduce_only, submitted_ts, status) "
                "values (?, ?, ?, ?, ?, 'open')",
                [(o.client_order_id, o.symbol, o.qty, int(o.reduce_only), o.submitted_ts) for o in orders],
            )

    def known_orders(self, client_order_ids: list[str]) -> set[str]:
        if not client_order_ids:
            return set()
        marks = ", ".join("?" * len(client_order_ids))
        q = f"select client_order_id from orders where client_order_id in ({marks})"
        return {r[0] for r in self.con.execute(q, client_order_ids)}

    def last_bar(self) -> str:
        return self.con.execute("select value from meta where key = 'last_bar_ts'").fetchone()[0]

    def process_bar(self, ts: str, opens: dict[str, float], volumes: dict[str, float]) -> None:
        if self.last_bar() >= ts:
            return
        slip, fee_rate = self.cfg.slippage_bps * 1e-4, self.cfg.fee_bps * 1e-4
        with transaction(self.con):
            cash = float(self.con.execute("select value from meta where key = 'cash'").fetchone()[0])
            held = dict(self.con.execute("select symbol, qty from positions").fetchall())
            open_orders = self.con.execute(
                "select client_order_id, symbol, qty, reduce_only from orders "
                "where status = 'open' and submitted_ts < ? order by client_order_id",
                (ts,),
            ).fetchall()
            for cid, symbol, qty, reduce_only in open_orders:
                if symbol not in opens:
                    self._close(cid, "cancelled", 0.0, f"no bar for {symbol} at {ts}")
                    continue
                cap = math.floor(self.cfg.max_volume_frac * volumes.get(symbol, 0.0))
                fill_qty = math.copysign(min(abs(qty), cap), qty)
                position = held.get(symbol, 0.0)
                if reduce_only:  # never through zero
                    fill_qty = math.copysign(min(abs(fill_qty), abs(position)), fill_qty) if position * qty < 0 else 0
                if fill_qty == 0:
                    self._close(cid, "cancelled", 0.0, "no volume to fill" if cap == 0 else "nothing to reduce")
                    continue
                price = opens[symbol] * (1 + math.copysign(slip, fill_qty))
                fee = abs(fill_qty * price) * fee_rate
                self.con.execute(
                    "insert into fills (fill_id, client_order_id, symbol, ts, qty, price, fee, requested_qty) "
                    "values (?, ?, ?, ?, ?, ?, ?, ?)",
                    (f"{cid}-F1", cid, symbol, ts, fill_qty, price, fee, qty),
                )
                cash -= fill_qty * price + fee
                held[symbol] = position + fill_qty
                status = "filled" if abs(fill_qty) == abs(qty) else "partial"
                self._close(cid, status, fill_qty, None if status == "filled" else "capped by the bar's volume")
            self.con.execute("delete from positions")
            self.con.executemany("insert into positions values (?, ?)", [(s, q) for s, q in held.items() if q != 0])
            self.con.execute("update meta set value = ? where key = 'cash'", (repr(cash),))
            self.con.execute("update meta set value = ? where key = 'last_bar_ts'", (ts,))

    def fills(self, after_ts: str = "") -> list[Fill]:
        rows = self.con.execute(
            "select fill_id, client_order_id, symbol, ts, qty, price, fee, requested_qty from fills "
            "where ts > ? order by seq",
            (after_ts,),
        ).fetchall()
        return [Fill(*r) for r in rows]

    def positions(self) -> dict[str, float]:
        return dict(self.con.execute("select symbol, qty from positions where qty != 0").fetchall())

    def cash(self) -> float:
        return float(self.con.execute("select value from meta where key = 'cash'").fetchone()[0])

    def _close(self, cid: str, status: str, filled: float, note: str | None) -> None:
        self.con.execute(
            "update orders set status = ?, filled_qty = ?, note = ? where client_order_id = ?",
            (status, filled, note, cid),
        )
