"""The decay detector over a real SQLite ledger: realised IC rows against the holdout IC a model was picked on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from live.ledger.writer import LedgerWriter, append_event
from live.reload import SWAP_INSERT
from loop.decay import DecayConfig, ledger_decay, one_sided_t

HOLDOUT_IC = 0.05
NOISE = 0.2  # the per-bar IC noise of a 24-symbol cross-section


def _ledger(results, models: dict[str, tuple[str, str]], interval: float = 5.0) -> LedgerWriter:
    """A ledger holding ``models``: key -> (target, model_dir), each with HOLDOUT_IC."""
    w = LedgerWriter(results, "paper")
    w.set_meta("interval_minutes", repr(interval))
    for key, (target, model_dir) in models.items():
        w.con.execute("insert into models values (?, ?, 'Ridge', 'CROSS_SECTIONAL', ?, ?, '2024-01-01', '2024-01-01', "
                      "null, null)", (key, target, model_dir, HOLDOUT_IC))  # fmt: skip
    return w


def _realise(w: LedgerWriter, key: str, target: str, ics, first_cycle: int = 1) -> None:
    for i, ic in enumerate(ics):
        c = first_cycle + i
        w.con.execute("insert or ignore into cycles values (?, ?, 0, 'ACTIVE', 0, 0, 0, 0, 1.0, '{}')",
                      (c, f"2024-01-01T{c // 12:02d}:{c % 12 * 5:02d}:00+00:00"))  # fmt: skip
        w.con.execute("insert into realised_ic values (?, '', ?, ?, ?, 24, ?)", (c, target, key, float(ic), c + 1))


def test_the_t_test_on_known_numbers():
    t, p = one_sided_t([0.0, 0.1, -0.1, 0.0], 0.05)  # mean 0, sd 0.0816, se 0.0408
    assert t == pytest.approx(-1.2247, abs=1e-4)
    assert p == pytest.approx(0.1540, abs=1e-3)  # P(T_3 <= t)


def test_a_model_that_keeps_its_edge_is_not_flagged(tmp_path):
    rng = np.random.default_rng(0)
    w = _ledger(tmp_path, {"m": ("fwd_ret_5m_from_open", "runs/a")})
    _realise(w, "m", "fwd_ret_5m_from_open", HOLDOUT_IC + NOISE * rng.standard_normal(300))
    (t,) = ledger_decay(tmp_path, "paper")
    assert not t.decayed and t.models[0].n_horizons == 30 and t.models[0].p_value > 0.01


def test_a_flipped_signal_is_found_within_the_documented_window(tmp_path):
    rng = np.random.default_rng(1)
    before = HOLDOUT_IC + NOISE * rng.standard_normal(100)
    after = -HOLDOUT_IC + NOISE * rng.standard_normal(60)
    w = _ledger(tmp_path, {"m": ("fwd_ret_5m_from_open", "runs/a")})
    found = None
    for k, ic in enumerate(np.concatenate([before, after])):
        _realise(w, "m", "fwd_ret_5m_from_open", [ic], first_cycle=k + 1)
        (t,) = ledger_decay(tmp_path, "paper")
        if t.decayed:
            found = k - len(before) + 1  # realised horizons after the flip
            break
    assert found is not None and 1 <= found <= 30, found  # within the 30-horizon window (loop.decay)
    m = t.models[0]
    assert m.realised_mean_ic < HOLDOUT_IC - 0.02 and m.p_value < 0.01 and m.holdout_ic == HOLDOUT_IC


def test_overlapping_horizons_are_thinned(tmp_path):
    w = _ledger(tmp_path, {"m": ("fwd_ret_15m_delay15m", "runs/a")})  # a 3-bar horizon
    _realise(w, "m", "fwd_ret_15m_delay15m", [-0.1] * 60)
    (t,) = ledger_decay(tmp_path, "paper", DecayConfig(window_horizons=30))
    assert t.models[0].n_horizons == 20 and not t.decayed  # 60 cycles hold 20 non-overlapping horizons
    (t,) = ledger_decay(tmp_path, "paper", DecayConfig(window_horizons=20))
    assert t.decayed and t.models[0].first_cycle == 1 and t.models[0].last_cycle == 58


def test_only_the_cycles_a_model_predicted_itself_count_and_every_model_must_decay(tmp_path):
    rng = np.random.default_rng(2)
    w = _ledger(tmp_path, {"a": ("fwd_ret_5m_from_open", "runs/new"), "b": ("fwd_ret_5m_from_open", "runs/b")})
    _realise(w, "a", "fwd_ret_5m_from_open", -0.1 + 0.01 * rng.standard_normal(40))  # the old model's, decayed
    w.con.execute(SWAP_INSERT, (41, "a", "runs/old", "runs/new", "promoted"))
    _realise(w, "a", "fwd_ret_5m_from_open", -0.1 + 0.01 * rng.standard_normal(10), first_cycle=41)
    _realise(w, "b", "fwd_ret_5m_from_open", -0.1 + 0.01 * rng.standard_normal(50))
    (t,) = ledger_decay(tmp_path, "paper")
    a, b = t.models
    assert a.since_cycle == 41 and a.n_horizons == 10 and not a.decayed  # too few of its own yet
    assert b.decayed and not t.decayed  # one model of the target still untested
    assert json.dumps(t.evidence())  # the evidence a sensor puts in its tags


def test_an_event_from_outside_the_engine_lands_in_its_stream(tmp_path):
    w = _ledger(tmp_path, {})
    _realise(w, "m", "fwd_ret_5m_from_open", [0.1, 0.2])
    event_id = append_event(tmp_path, "paper", "decay_detected", "realised IC below holdout", "warning", target="x")
    row = w.con.execute("select cycle_id, event_type, data_json from events where event_id = ?", (event_id,)).fetchone()
    assert row == (2, "decay_detected", '{"target": "x"}')
    with pytest.raises(FileNotFoundError, match="no ledger for account 'nope'"):
        append_event(tmp_path, "nope", "x", "y")
