"""Hot reload: the engine switches models between cycles when the champion moves; positions carry over."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from catalog.aliases import clear_alias, list_aliases, set_alias
from catalog.query import sql
from live.config import EngineConfig, load_engine_config
from live.ledger.reader import LedgerReader
from live.reload import SWAP_INSERT, HotReload
from live.runner import run_live
from loop.promotion import champion_alias
from tests.conftest import DEMO_CONFIG

TARGET = "fwd_ret_5m_from_open"
ALIAS = champion_alias(TARGET)


def _cfg(**over) -> EngineConfig:
    base = load_engine_config(DEMO_CONFIG).model_dump()
    return EngineConfig.model_validate({**base, "policy": "champions", "hot_reload": True, **over})


def _dirs(results: Path) -> dict[str, str]:
    """TARGET's candidates by family; the other champions are cleared, so the champions policy trades TARGET alone
    (the demo's ranking target trades at the same holding)."""
    for alias in list_aliases(results)["alias"].to_list():
        if alias.startswith("champion.") and alias != ALIAS:
            clear_alias(results, alias, note="tests trade one target")
    df = sql(results, "select family, model_dir from pick_candidates where target = ? and view = 'CROSS_SECTIONAL'",
             [TARGET])  # fmt: skip
    return dict(zip(df["family"], df["model_dir"], strict=True))


def _rows(results: Path, query: str, params: tuple = ()) -> list[tuple]:
    with LedgerReader(results, "paper") as r:
        return r.con.execute(query, params).fetchall()


def _when_cycle(monkeypatch, n: int, action) -> list[int]:
    """Run ``action`` (an alias move, as a promotion does) in another thread when the engine reaches the boundary
    before cycle ``n``, and let the boundary's reload check wait for it: the engine's cycles take milliseconds, so
    a watcher racing the engine would move the alias at whatever cycle it happened to see. Returns the cycles at
    which it ran (once)."""
    ran: list[int] = []
    check = HotReload.before_cycle

    def before_cycle(self, engine, cycle_id, ts):
        if cycle_id == n and not ran:
            mover = threading.Thread(target=action)
            mover.start()
            mover.join(timeout=120)
            ran.append(cycle_id)
        return check(self, engine, cycle_id, ts)

    monkeypatch.setattr(HotReload, "before_cycle", before_cycle)
    return ran


def test_a_promotion_is_traded_from_the_next_cycle_and_a_broken_model_is_not(live_copy: Path, monkeypatch) -> None:
    dirs = _dirs(live_copy)
    first, second, broken = dirs["ElasticNet"], dirs["Ridge"], dirs["LightGBM"]
    set_alias(live_copy, ALIAS, first, note="the first champion")

    moved = _when_cycle(monkeypatch, 6, lambda: set_alias(live_copy, ALIAS, second, note="promoted"))
    summary = run_live(live_copy, _cfg(), interval_minutes=5.0, max_cycles=30, install_signals=False)
    assert moved == [6]
    assert summary.model_swaps == 1 and summary.cycles == 30

    (swap_cycle,) = {r[0] for r in _rows(live_copy, "select cycle_id from model_swaps")}
    assert 6 <= swap_cycle <= 30
    swaps = _rows(live_copy, "select model, old_model_dir, new_model_dir from model_swaps order by model")
    assert swaps == [(f"{TARGET}/CROSS_SECTIONAL/ElasticNet", first, None), (f"{TARGET}/CROSS_SECTIONAL/Ridge", None,
                                                                              second)]  # fmt: skip
    # every cycle before the swap scored by the old champion, every one from it by the new one
    used = _rows(live_copy, "select cycle_id, group_concat(distinct model) from predictions "
                 "where model not like '<blend>%' group by cycle_id order by cycle_id")  # fmt: skip
    assert all(m.endswith("ElasticNet") for c, m in used if c < swap_cycle)
    assert all(m.endswith("Ridge") for c, m in used if c >= swap_cycle)
    assert _rows(live_copy, "select model_dir from models") == [(second,)]
    events = _rows(live_copy, "select event_type, message from events where event_type like 'models_%'")
    assert [e[0] for e in events] == ["models_swapped"] and events[0][1].startswith("2 model(s) changed")
    # positions carried over: the engine and the broker agree at every cycle, nothing was flattened
    assert _rows(live_copy, "select count(*) from events where event_type = 'reconciliation_mismatch'") == [(0,)]
    held = _rows(live_copy, "select count(*) from decisions where cycle_id = ? and current_weight_frac != 0",
                 (swap_cycle,))[0][0]  # fmt: skip
    assert held > 0

    # a model whose file no longer matches the catalog's checksum is refused: the champion keeps trading
    meta = sql(live_copy, "select model_path from models where model_dir = ?", [broken])["model_path"][0]
    path = live_copy / meta
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(path, "r+b") as fh:  # same inode, size and mtime: the indexer does not look again, the loader does
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    moved = _when_cycle(monkeypatch, 34, lambda: set_alias(live_copy, ALIAS, broken, note="a broken challenger"))
    summary = run_live(live_copy, _cfg(), interval_minutes=5.0, max_cycles=10, install_signals=False)
    assert moved == [34]
    assert summary.model_swaps == 0
    failed = _rows(live_copy, "select severity, message from events where event_type = 'models_reload_failed'")
    assert len(failed) == 1 and failed[0][0] == "warning" and "checksum" in failed[0][1]
    assert _rows(live_copy, "select distinct model from predictions where cycle_id > 33 and model not like '<%'") == [
        (f"{TARGET}/CROSS_SECTIONAL/Ridge",)
    ]


def test_resuming_with_other_models_is_a_switch_with_hot_reload_and_an_error_without(live_copy: Path) -> None:
    dirs = _dirs(live_copy)
    set_alias(live_copy, ALIAS, dirs["ElasticNet"])
    run_live(live_copy, _cfg(), interval_minutes=5.0, max_cycles=5, install_signals=False)
    set_alias(live_copy, ALIAS, dirs["Ridge"])  # moved while the engine was stopped
    with pytest.raises(ValueError, match="other models than the policy picks now"):
        run_live(live_copy, _cfg(hot_reload=False), interval_minutes=5.0, max_cycles=5, install_signals=False)
    summary = run_live(live_copy, _cfg(), interval_minutes=5.0, max_cycles=5, install_signals=False)
    assert summary.resumed_after is not None and summary.cycles == 5
    assert {r[0] for r in _rows(live_copy, "select cycle_id from model_swaps")} == {6}
    assert _rows(live_copy, "select distinct model from predictions where cycle_id >= 6 and model not like '<%'") == [
        (f"{TARGET}/CROSS_SECTIONAL/Ridge",)
    ]


def test_the_bridge_reports_a_reloaded_models_realised_ic_over_its_own_cycles_only(tmp_path: Path) -> None:
    from bridge.ledger_views import models_in_use
    from tests.test_decay import _ledger, _realise

    w = _ledger(tmp_path, {"m": (TARGET, "runs/new")})
    w.set_meta("config", EngineConfig().model_dump_json())
    _realise(w, "m", TARGET, [-0.1] * 30)  # the old model under the same key
    w.con.execute(SWAP_INSERT, (31, "m", "runs/old", "runs/new", "promoted"))
    _realise(w, "m", TARGET, [0.08] * 10, first_cycle=31)
    with LedgerReader(tmp_path, "paper") as r:
        (m,) = models_in_use(r)
    assert m.realised_cycles == 10 and m.realised_ic == pytest.approx(0.08)


def test_a_resume_whose_next_bar_the_new_models_saw_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from live.ledger.writer import LedgerWriter
    from live.runner import InSampleError, _refuse_in_sample_resume

    w = LedgerWriter(tmp_path, "paper")
    w.con.execute("insert into cycles values (1, '2024-01-02T15:00:00+00:00', 0, 'ACTIVE', 0, 0, 0, 0, 1.0, '{}')")
    bar = datetime(2024, 1, 2, 15, 5, tzinfo=UTC)  # the next bar in the lake
    seen = SimpleNamespace(key="t/CROSS_SECTIONAL/Ridge", model_dir="runs/new", data_end=bar,
                           first_tradable=bar + timedelta(minutes=10))  # fmt: skip
    with pytest.raises(InSampleError, match="refusing to resume at 2024-01-02T15:05:00"):
        _refuse_in_sample_resume(w, _cfg(), [seen], [bar, bar + timedelta(minutes=5)])
    w = LedgerWriter(tmp_path, "paper")
    unseen = SimpleNamespace(**{**seen.__dict__, "first_tradable": bar})
    _refuse_in_sample_resume(w, _cfg(), [unseen], [bar])  # its first tradable bar: resumes
    _refuse_in_sample_resume(w, _cfg(allow_in_sample=True), [seen], [bar])  # labelled in-sample, on request
    assert w.con.execute("select count(*) from models").fetchone() == (0,)  # nothing was written
