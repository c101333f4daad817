"""The ledger's schema: a cycle's decisions and predictions are one row each per cycle and model, read one row per
symbol through the ``decisions`` and ``predictions`` views, numbers bit for bit; a schema-3 ledger (one row per
symbol) is upgraded in place when the engine opens it, nothing lost."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from live.engine import records
from live.ledger.schema import SCHEMA_VERSION, ledger_file
from live.ledger.writer import LedgerWriter

SCHEMA_3_TABLES = """
create table meta (key text primary key, value text not null);
create table decisions (
    cycle_id integer not null, symbol text not null,
    action text not null check (action in ('TRADE', 'HOLD', 'BLOCKED')),
    reason text not null,
    alpha_bps real, cost_bps real, sigma_bps real, z real,
    current_weight_frac real, target_weight_frac real, order_qty real not null,
    trace_json text not null,
    primary key (cycle_id, symbol)
);
create table predictions (
    cycle_id integer not null, ts text not null, target text not null, model text not null,
    symbol text not null, score real not null,
    primary key (cycle_id, model, symbol)
) without rowid;
insert into meta values ('schema_version', '3');
"""


def _decisions(n: int = 3) -> tuple[list[str], str]:
    universe = [f"S{i}" for i in range(n)]
    stages = {"alpha_bps": np.array([1.5, np.nan, -2.25]), "cost_bps": np.array([0.1, 0.2, 1 / 3])}
    text = records.decisions_json(
        universe,
        ["TRADE", "BLOCKED", "HOLD"],
        ["open/increase", "stale: no bar at this timestamp", "at target"],
        False,
        {"t/CROSS_SECTIONAL/Ridge": np.array([0.1, np.nan, np.pi])},
        {"t/CROSS_SECTIONAL": np.array([0.5, np.nan, -0.5])},
        stages,
        np.array(["", "stale: no bar at this timestamp", ""], dtype=object),
        "ACTIVE",
        [[], [], ["position limit"]],
        np.array([10.0, 0.0, 0.0]),
    )
    return universe, text


def test_decisions_and_predictions_read_back_one_row_per_symbol_bit_for_bit(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, "acct")
    _, text = _decisions()
    with writer.cycle() as con:
        con.execute("insert into cycles values (7, 'ts7', 0, 'ACTIVE', 0, 1, 1, 1, 1.0, '{}')")
        con.execute("insert into cycle_decisions values (?, ?)", (7, text))
    rows = writer.con.execute(
        "select symbol, action, reason, alpha_bps, cost_bps, order_qty, trace_json from decisions "
        "where cycle_id = 7 order by symbol"
    ).fetchall()
    assert [r[:3] for r in rows] == [
        ("S0", "TRADE", "open/increase"),
        ("S1", "BLOCKED", "stale: no bar at this timestamp"),
        ("S2", "HOLD", "at target"),
    ]
    assert [r[3] for r in rows] == [1.5, None, -2.25] and rows[2][4] == 1 / 3 and rows[0][5] == 10.0
    trace = json.loads(rows[2][6])
    assert trace["prediction"] == {"t/CROSS_SECTIONAL/Ridge": np.pi} and trace["risk"]["cuts"] == "position limit"
    assert trace["blend"] == {"t/CROSS_SECTIONAL": -0.5} and "symbol" not in trace and trace["in_sample"] is False
    preds = writer.con.execute("select ts, target, model, symbol, score from predictions order by model, symbol")
    assert preds.fetchall() == [  # a missing score is absent, the others exact
        ("ts7", "t", "<blend>t/CROSS_SECTIONAL", "S0", 0.5),
        ("ts7", "t", "<blend>t/CROSS_SECTIONAL", "S2", -0.5),
        ("ts7", "t", "t/CROSS_SECTIONAL/Ridge", "S0", 0.1),
        ("ts7", "t", "t/CROSS_SECTIONAL/Ridge", "S2", np.pi),
    ]
    writer.close()


def test_a_schema_3_ledger_is_upgraded_in_place_with_its_rows(tmp_path: Path) -> None:
    path = ledger_file(tmp_path, "old")
    path.parent.mkdir(parents=True)
    con = sqlite3.connect(path)
    con.executescript(SCHEMA_3_TABLES)
    trace = json.dumps({"in_sample": False, "prediction": {"t/V/m": 0.1}, "gate": None, "order_qty": 3.0})
    con.executemany(
        "insert into decisions values (?, ?, ?, ?, ?, null, null, null, null, null, ?, ?)",
        [(1, "B", "HOLD", "at target", 1.25, 0.0, trace), (1, "A", "TRADE", "reduce", 1.25, 3.0, trace)],
    )
    con.executemany("insert into predictions values (1, 'ts1', 't', 'm', ?, ?)", [("A", 0.25), ("B", -0.5)])
    con.commit()
    con.close()

    writer = LedgerWriter(tmp_path, "old")
    assert writer.meta("schema_version") == str(SCHEMA_VERSION)
    got = writer.con.execute("select symbol, action, reason, trace_json from decisions order by symbol").fetchall()
    assert [g[:3] for g in got] == [("A", "TRADE", "reduce"), ("B", "HOLD", "at target")]
    assert json.loads(got[0][3]) == json.loads(trace)  # the trace as it was, nulls kept
    tables = {r[0] for r in writer.con.execute("select name from sqlite_master where type = 'table'")}
    assert {"cycle_decisions", "model_swaps"} <= tables and not {"decisions", "predictions"} & tables
    writer.close()
