"""The ledger's record of a cycle's decisions: one ``cycle_decisions`` row per cycle, read back one row per symbol
through the ``decisions`` and ``predictions`` views and in full by ``live.ledger.decisions.decode`` (the bridge's
read), numbers bit for bit; a schema-3 ledger (one row per symbol) is upgraded in place, nothing lost."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from live.ledger import decisions
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
RIDGE, BLEND = "t/CROSS_SECTIONAL/Ridge", "t/CROSS_SECTIONAL"


def _record() -> tuple[str, str, str]:
    stages = {name: np.full(3, np.nan) for name in decisions.STAGES}
    stages["alpha_bps"] = np.array([1.5, np.nan, -2.25])
    stages["cost_bps"] = np.array([0.1, 0.2, 1 / 3])
    return decisions.encode(
        ["S0", "S1", "S2"],
        ["TRADE", "BLOCKED", "HOLD"],
        ["open/increase", "stale: no bar at this timestamp", "at target"],
        {RIDGE: np.array([0.1, np.nan, np.pi])},
        {BLEND: np.array([0.5, np.nan, -0.5])},
        stages,
        np.array(["", "stale: no bar at this timestamp", ""], dtype=object),
        [[], [], ["position limit"]],
        np.array([10.0, 0.0, np.inf]),
    )


def test_a_cycles_decisions_read_back_one_row_per_symbol_bit_for_bit(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, "acct")
    record = _record()
    with writer.cycle() as con:
        con.execute("insert into cycles values (7, 'ts7', 1, 'REDUCING', 0, 1, 1, 1, 1.0, '{}')")
        con.execute("insert into cycle_decisions values (7, ?, ?, ?)", record)
    rows = writer.con.execute(
        "select symbol, action, reason, alpha_bps, cost_bps, order_qty from decisions where cycle_id = 7 order by 1"
    ).fetchall()
    assert rows == [
        ("S0", "TRADE", "open/increase", 1.5, 0.1, 10.0),
        ("S1", "BLOCKED", "stale: no bar at this timestamp", None, 0.2, 0.0),
        ("S2", "HOLD", "at target", -2.25, 1 / 3, None),  # inf is written as null
    ]
    preds = writer.con.execute("select ts, target, model, symbol, score from predictions order by model, symbol")
    assert preds.fetchall() == [  # a missing score is absent, the others exact
        ("ts7", "t", f"<blend>{BLEND}", "S0", 0.5),
        ("ts7", "t", f"<blend>{BLEND}", "S2", -0.5),
        ("ts7", "t", RIDGE, "S0", 0.1),
        ("ts7", "t", RIDGE, "S2", np.pi),
    ]
    full = decisions.decode(*record, True, "REDUCING")
    assert [d["symbol"] for d in full] == ["S0", "S1", "S2"] and full[1]["alpha_bps"] is None
    trace = full[2]["trace"]
    assert trace["prediction"] == {RIDGE: np.pi} and trace["blend"] == {BLEND: -0.5}
    assert trace["risk"] == {"state": "REDUCING", "cuts": "position limit"} and trace["in_sample"] is True
    assert full[1]["trace"]["gate"] == "stale: no bar at this timestamp" and full[0]["trace"]["gate"] is None
    assert decisions.scores(*record) == ({RIDGE: {"S0": 0.1, "S2": np.pi}}, {BLEND: {"S0": 0.5, "S2": -0.5}})
    writer.close()


def test_a_schema_3_ledger_is_upgraded_in_place_with_its_rows(tmp_path: Path) -> None:
    path = ledger_file(tmp_path, "old")
    path.parent.mkdir(parents=True)
    con = sqlite3.connect(path)
    con.executescript(SCHEMA_3_TABLES)
    trace = {
        "in_sample": False,
        "prediction": {RIDGE: 0.1 + 1e-17},
        "blend": {BLEND: np.pi},
        "alpha_bps": 1.25,
        "gate": None,
        "risk": {"state": "ACTIVE", "cuts": "gross limit"},
        "order_qty": 3.0,
    }
    con.executemany(
        "insert into decisions values (?, ?, ?, ?, ?, null, null, null, null, null, ?, ?)",
        [(1, "B", "HOLD", "at target", 1.25, 3.0, json.dumps(trace)), (1, "A", "TRADE", "reduce", 1.25, 3.0, "{}")],
    )
    con.executemany(
        "insert into predictions values (1, 'ts1', 't', ?, 'B', ?)", [(RIDGE, 0.1), (f"<blend>{BLEND}", np.pi)]
    )
    con.commit()
    con.close()

    writer = LedgerWriter(tmp_path, "old")
    assert writer.meta("schema_version") == str(SCHEMA_VERSION)
    record = writer.con.execute("select models_json, blends_json, decisions_json from cycle_decisions").fetchone()
    got = decisions.decode(*record, False, "ACTIVE")
    assert [(d["symbol"], d["action"], d["reason"]) for d in got] == [
        ("A", "TRADE", "reduce"),
        ("B", "HOLD", "at target"),
    ]
    assert got[1]["trace"]["prediction"] == {RIDGE: 0.1 + 1e-17} and got[1]["trace"]["blend"] == {BLEND: np.pi}
    assert got[1]["trace"]["risk"]["cuts"] == "gross limit" and got[1]["order_qty"] == 3.0
    assert got[0]["trace"]["prediction"] == {RIDGE: None}  # A had no score
    tables = {r[0] for r in writer.con.execute("select name from sqlite_master where type = 'table'")}
    assert {"cycle_decisions", "model_swaps"} <= tables and not {"decisions", "predictions"} & tables
    writer.close()


def test_the_decisions_view_carries_each_trace_with_the_cycles_state(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, "acct")
    with writer.cycle() as con:
        con.execute("insert into cycles values (3, 'ts3', 0, 'HALTED', 1, 0, 0, 3, 1.0, '{}')")
        con.execute("insert into cycle_decisions values (3, ?, ?, ?)", _record())
    got = writer.con.execute("select models_json, trace_json from decisions where symbol = 'S2'").fetchone()
    trace = json.loads(got[1])
    assert json.loads(got[0]) == [RIDGE] and trace["prediction"] == [np.pi]  # in models_json order, exact
    assert trace["in_sample"] is False and trace["risk"] == {"state": "HALTED", "cuts": "position limit"}
    assert trace["cost_bps"] == 1 / 3 and trace["gate"] is None and "cuts" not in trace
    writer.close()
