"""Hot reload: between two cycles the engine switches to the models its policy picks now.

At every cycle boundary (before the cycle of bar ``ts``) :meth:`HotReload.before_cycle`:

1. looks at the catalog file (``RESULTS/catalog.duckdb``: its size and mtime change with every index write, which
   every alias move and every new run makes); unchanged: nothing to do (one ``stat``);
2. runs the account's policy; the same model directories: nothing to do;
3. loads and verifies the picked models (``live.selection.select_traded``: the catalog's checksums, interval,
   tradability). A model that fails to load refuses the whole switch: the old models keep trading and a warning
   event ``models_reload_failed`` names the error (retried at the next catalog change);
4. a new model may trade only bars it never saw (``first_tradable``); until ``ts`` reaches it the switch waits
   (event ``models_reload_waiting``, once);
5. swaps atomically: the engine's models, its feature buffer (re-warmed from the lake's bars before ``ts``), and in
   one ledger transaction the ``models`` rows, the ``model_swaps`` history, the ``models`` meta and an event
   ``models_swapped`` naming every change and the reason. Positions, cash, risk state and pending predictions
   carry over.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from catalog.indexer import catalog_path
from live.config import EngineConfig
from live.engine.cycle import Engine, TradedModel
from live.selection import select_traded
from live.sources import LakeBars

SWAP_INSERT = "insert into model_swaps (cycle_id, model, old_model_dir, new_model_dir, reason) values (?, ?, ?, ?, ?)"


def _signature(results: Path) -> tuple[int, int] | None:
    try:
        st = catalog_path(results).stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def record_models(con, models: list[TradedModel]) -> None:
    """Write the ``models`` rows of the models trading now (the rows of models no longer trading are removed)."""
    con.execute("delete from models where model not in (select value from json_each(?))",
                (json.dumps([m.key for m in models]),))  # fmt: skip
    for m in models:
        con.execute(
            "insert into models values (?, ?, ?, ?, ?, ?, ?, ?, null, null) on conflict(model) do update set "
            "target = excluded.target, family = excluded.family, view = excluded.view, model_dir = excluded.model_dir,"
            " holdout_ic = excluded.holdout_ic, data_end = excluded.data_end, "
            "first_tradable_ts = excluded.first_tradable_ts, quarantined_cycle = null, quarantine_reason = null "
            "where model_dir != excluded.model_dir",
            (m.key, m.target, m.family, m.view, m.model_dir, m.holdout_ic, m.data_end.isoformat(),
             m.first_tradable.isoformat()),
        )  # fmt: skip


def record_swap(ledger, models: list[TradedModel], changes: list[tuple], cycle_id: int, reason: str, when: str) -> None:
    """In one ledger transaction: the ``models`` rows of ``models``, a ``model_swaps`` row per change (the first
    cycle the new models predict at: ``cycle_id``), the ``models`` meta and a ``models_swapped`` event."""
    with ledger.cycle() as con:
        record_models(con, models)
        con.executemany(SWAP_INSERT, [(cycle_id, key, old, new, reason) for key, old, new in changes])
        ledger.set_meta("models", models_meta(models))
        ledger.event(
            cycle_id - 1 or None,
            "models_swapped",
            f"{len(changes)} model(s) changed {when}: {reason}",
            "warning",
            changes=[{"model": k, "old": o, "new": n} for k, o, n in changes],
            reason=reason,
        )


def models_meta(models: list[TradedModel]) -> str:
    """The ledger's ``models`` meta: the sorted model directories trading now."""
    return json.dumps(sorted(m.model_dir for m in models))


class HotReload:
    """Follows the account's policy between cycles (see the module docstring)."""

    def __init__(self, results: str | Path, cfg: EngineConfig, interval_minutes: float, lake: LakeBars) -> None:
        self.results = Path(results)
        self.cfg = cfg
        self.interval_minutes = interval_minutes
        self.lake = lake
        self.seen = _signature(self.results)
        self.waiting: list[TradedModel] | None = None

    def before_cycle(self, engine: Engine, cycle_id: int, ts: datetime) -> list[tuple] | None:
        """Swap the engine's models if the policy picks others now and they may trade ``ts``; the changes, or
        None."""
        sig = _signature(self.results)
        if sig != self.seen:
            self.seen = sig
            current = sorted(m.model_dir for m in engine.models)
            try:
                models, refused, _skipped = select_traded(self.results, self.cfg, self.interval_minutes)
            except Exception as exc:  # noqa: BLE001 - a broken catalog must not stop trading
                models, refused = [], [f"{type(exc).__name__}: {exc}"]
            if refused or not models:
                why = "; ".join(refused)[:2000] or f"policy {self.cfg.policy!r} picks no tradable model"
                engine.ledger.event(cycle_id - 1, "models_reload_failed", f"kept the models trading: {why}", "warning")
                self.waiting = None
            elif sorted(m.model_dir for m in models) == current:
                self.waiting = None
            else:
                self.waiting = models
                bound = max(m.first_tradable for m in models)
                if ts < bound:
                    engine.ledger.event(
                        cycle_id - 1,
                        "models_reload_waiting",
                        f"new models picked; they saw bars up to {bound.isoformat()}, so they trade from there",
                        first_tradable=bound.isoformat(),
                    )
        if self.waiting is None or ts < max(m.first_tradable for m in self.waiting):
            return None
        models, self.waiting = self.waiting, None
        return self._swap(engine, models, cycle_id, ts, f"policy {self.cfg.policy!r} picks other models")

    def _swap(self, engine: Engine, models: list[TradedModel], cycle_id: int, ts: datetime, reason: str) -> list:
        buffer = Engine.buffer_for(models)
        for part in self.lake.at([t for t in self.lake.timestamps() if t < ts][-buffer.history_bars :]):
            buffer.push(engine.universe_bars(part))  # the bars before ts, as the runner warms an engine
        changes = engine.replace_models(models, cycle_id, buffer)
        record_swap(engine.ledger, models, changes, cycle_id, reason, f"before cycle {cycle_id} ({ts.isoformat()})")
        return changes
