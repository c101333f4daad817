"""The engine cycle, in REFERENCE.md's stage order:

``idle → prediction → blending → arbitration → gating → sizing → risk → execution → idle``.

Before the stages, at each bar ``ts``: the broker moves to ``ts`` (orders of the previous cycle fill at its
open), the engine reconciles with the broker's book (missed fills are recovered; a mismatch trips the kill switch),
applies queued commands, and marks equity at the close. After them, one ledger transaction writes the whole cycle
and the orders go to the broker (resubmitting an order id the broker has is a no-op). Every symbol gets TRADE, HOLD
or BLOCKED with the trace of every stage's numbers.
"""

from __future__ import annotations

import gc
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from contracts.bridge import utc_now_iso
from live.broker.base import Fill, Order
from live.config import EngineConfig
from live.engine import arbitration, blending, sizing
from live.engine.execution import decide
from live.engine.prediction import predict_all
from live.features import FeatureBuffer, epoch_us
from live.inference import CrossSectionalRankingPredictor
from live.ledger import decisions as decision_record
from live.loader import LoadedModel
from live.risk.limits import ACTIVE, HALTED, RiskState, assess, pre_trade, trip
from ml.features import BAR_WINDOW_COLUMNS
from ml.metrics import row_ic
from ml.targets import VOL_WINDOW_BARS, TargetSpec, add_targets, price_path, realised_forward_return

BLEND = "<blend>"
_OPEN, _CLOSE, _VOLUME = (BAR_WINDOW_COLUMNS.index(c) for c in ("open", "close", "volume"))


@dataclass
class TradedModel:
    """A loaded model and what the engine needs to know about it (from the catalog)."""

    loaded: LoadedModel
    spec: TargetSpec
    holdout_ic: float
    data_end: datetime
    first_tradable: datetime
    model_dir: str

    @cached_property
    def key(self) -> str:
        return self.loaded.key

    @property
    def target(self) -> str:
        return self.loaded.meta.target

    @property
    def family(self) -> str:
        return self.loaded.meta.family

    @property
    def view(self) -> str:
        return self.loaded.meta.view

    @property
    def symbol(self) -> str | None:
        return self.loaded.meta.symbol

    @cached_property
    def predict(self) -> Callable[[np.ndarray], np.ndarray]:
        """The model's inference path (``live.inference``): a ranking model's scores of one timestamp come back as
        cross-sectional z-scores, any other model's as its family predicts them."""
        if self.loaded.ranking:
            return CrossSectionalRankingPredictor(self.loaded).predict
        return self.loaded.predict


def cycle_threads() -> threadpool_limits:
    """A context in which BLAS runs on one thread, for the engine's cycles: their array products are small (500
    symbols × 104 bars, 500 rows × 44 features), where OpenBLAS's threads cost more than they save (a 500 × 104 by
    104 × 27 product: 0.13 ms on one thread, 0.4 ms on two, on 2 cores)."""
    return threadpool_limits(limits=1, user_api="blas")


def model_changes(old: dict[str, str], new: dict[str, str]) -> list[tuple[str, str | None, str | None]]:
    """``(model, old model_dir or None, new model_dir or None)`` for every model key whose directory differs
    between two ``{model key: model_dir}`` selections, sorted by key."""
    return [(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


@dataclass
class EngineState:
    """What carries from cycle to cycle (persisted with every cycle; a resumed engine starts from it)."""

    cash: float
    fees_cum: float = 0.0
    prev_equity: float = 0.0
    risk: RiskState = field(default_factory=RiskState)
    cov: dict[str, list[list[float]]] = field(default_factory=dict)  # target -> families' z-score correlation
    realised: dict[str, list[float]] = field(default_factory=dict)  # model -> [sum of realised IC, cycles]
    quarantined: dict[str, str] = field(default_factory=dict)  # model -> reason
    fills_seen_ts: str = ""  # fills at bars up to this one are in the ledger (the broker is asked for later ones)

    def to_json(self) -> str:
        d = dict(self.__dict__)
        d["risk"] = self.risk.to_dict()
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EngineState:
        d = json.loads(text) if isinstance(text, str) else dict(text)
        d["risk"] = RiskState(**d["risk"])
        return cls(**d)


@dataclass
class CycleResult:
    cycle_id: int
    ts: str
    n_trade: int
    n_hold: int
    n_blocked: int
    equity: float
    orders: list[Order]
    latency_ms: float
    state: str


class Engine:
    """One account's engine over a fixed universe and set of models (see the module docstring)."""

    def __init__(
        self,
        cfg: EngineConfig,
        models: list[TradedModel],
        universe: list[str],
        interval_minutes: float,
        ledger,
        broker,
        state: EngineState,
        positions: dict[str, tuple[float, float, str]],
        known_fills: set[str],
    ) -> None:
        self.cfg = cfg
        self.universe = universe
        self.index = {s: i for i, s in enumerate(universe)}
        self.interval_minutes = interval_minutes
        self.ledger = ledger
        self.broker = broker
        self.state = state
        held = [positions.get(s, (0.0, np.nan, "")) for s in universe]
        self.qty = np.array([h[0] for h in held], dtype=float)
        self.avg_price = np.array([h[1] for h in held], dtype=float)  # average entry price, NaN when flat
        self.entry_ts = [h[2] for h in held]  # ISO ts of the fill that opened the position, "" when flat
        self.known_fills = known_fills
        self.last_close = np.full(len(universe), np.nan)
        self.close_hist: deque[np.ndarray] = deque(maxlen=VOL_WINDOW_BARS + 1)
        self.pending: dict[int, dict[str, Any]] = {}  # cycle_id -> {"ts", "scores": {model: array}}
        self.loaded_cycle: dict[str, int] = {}  # model -> the first cycle it predicted at, after a hot reload
        self._use(models)
        self.buffer = self.buffer_for(models)
        self._pushed: tuple[list[str], np.ndarray] = ([], np.zeros(0, dtype=np.int64))  # the last bar's symbols
        self._universe_rows: tuple[int, np.ndarray, np.ndarray] = (-1, np.zeros(0, np.int64), np.zeros(0, bool))

    def _use(self, models: list[TradedModel]) -> None:
        self.models = models
        self.targets = sorted({m.target for m in models})
        self.specs = {m.target: m.spec for m in models}
        self.max_reach = max((s.reach_bars for s in self.specs.values()), default=1)
        self.first_tradable = max(m.first_tradable for m in models)

    @staticmethod
    def buffer_for(models: list[TradedModel]) -> FeatureBuffer:
        """An empty feature buffer for ``models`` (its ``history_bars`` says how many bar timestamps it keeps)."""
        max_reach = max((m.spec.reach_bars for m in models), default=1)
        longest_window = max((m.loaded.sequence.length for m in models if m.loaded.sequence), default=0)
        return FeatureBuffer(
            (f for m in models for f in m.loaded.meta.feature_list),
            min_bars=max(VOL_WINDOW_BARS + 1, max_reach + 2),
            sequence_bars=longest_window,
        )

    def replace_models(self, models: list[TradedModel], from_cycle: int, buffer: FeatureBuffer) -> list[tuple]:
        """Trade ``models`` from cycle ``from_cycle`` on (a hot reload, between cycles): positions, cash, risk and
        the pending predictions carry over; a replaced model's realised-IC state starts afresh (its blend weight
        starts from the new holdout IC); ``buffer`` holds the bars the new models need. Returns the changes as
        ``(model, old model_dir or None, new model_dir or None)``."""
        changes = model_changes({m.key: m.model_dir for m in self.models}, {m.key: m.model_dir for m in models})
        for key, _, _ in changes:
            self.state.realised.pop(key, None)
            self.state.quarantined.pop(key, None)
            self.loaded_cycle[key] = from_cycle
        self._use(models)
        self.buffer = buffer
        self._universe_rows = (-1, *self._universe_rows[1:])  # another window: its rows are looked up again
        return changes

    # --- warm-up ------------------------------------------------------------------------------------------------
    def warm(self, bars_at_ts: pl.DataFrame) -> None:
        """Feed a bar timestamp before the first cycle (history for features, volatility and closes)."""
        idx, values = self._push(bars_at_ts)
        self._update_closes(idx, values[:, _CLOSE])

    def universe_bars(self, bars_at_ts: pl.DataFrame) -> pl.DataFrame:
        """A timestamp's bars of the engine's universe symbols (the others are not traded, nor ranked against)."""
        known = [s in self.index for s in bars_at_ts["symbol"].to_list()]
        return bars_at_ts if all(known) else bars_at_ts.filter(pl.Series(known))

    def _push(self, bars_at_ts: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Push a timestamp's bars of universe symbols into the feature buffer; their universe positions and their
        values (``ml.features.BAR_WINDOW_COLUMNS``)."""
        pushed, values = self.buffer.push(self.universe_bars(bars_at_ts))
        if pushed != self._pushed[0]:  # other symbols than the last bar's (usually the same)
            self._pushed = (pushed, np.fromiter((self.index[s] for s in pushed), np.int64, len(pushed)))
        return self._pushed[1], values

    def _update_closes(self, idx: np.ndarray, closes: np.ndarray) -> np.ndarray:
        close = np.full(len(self.universe), np.nan)
        close[idx] = closes
        self.last_close = np.where(np.isfinite(close), close, self.last_close)
        self.close_hist.append(close)
        return close

    # --- the cycle ----------------------------------------------------------------------------------------------
    def run_cycle(self, cycle_id: int, ts: datetime, bars_at_ts: pl.DataFrame) -> CycleResult:
        """The cycle of bar ``ts`` (``bars_at_ts``: its bars), committed to the ledger, its orders handed to the
        broker. Python's garbage collector waits while it runs: a collection is housekeeping for between bars,
        not part of a bar's latency."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._cycle(cycle_id, ts, bars_at_ts)
        finally:
            if collecting:
                gc.enable()

    def _cycle(self, cycle_id: int, ts: datetime, bars_at_ts: pl.DataFrame) -> CycleResult:
        t0 = time.perf_counter()
        ts_iso = ts.isoformat()
        day = ts.date().isoformat()
        events: list[tuple[str, str, str, dict]] = []
        in_sample = ts < self.first_tradable
        rows_idx, bar_values = self._push(bars_at_ts)
        syms = [self.universe[i] for i in rows_idx]
        n = len(self.universe)
        bar_open, bar_close, bar_volume = bar_values[:, _OPEN], bar_values[:, _CLOSE], bar_values[:, _VOLUME]
        opens = dict(zip(syms, bar_open.tolist(), strict=True))
        volume = np.zeros(n)
        volume[rows_idx] = bar_volume

        # the broker moves to ts: the previous cycle's orders fill at this bar's open; reconcile with its book
        self.broker.process_bar(ts_iso, opens, dict(zip(syms, volume[rows_idx].tolist(), strict=True)))
        new_fills = [
            f for f in self.broker.fills(after_ts=self.state.fills_seen_ts) if f.fill_id not in self.known_fills
        ]
        for f in new_fills:
            self._apply_fill(f)
        self.state.fills_seen_ts = max([self.state.fills_seen_ts, *(f.ts for f in new_fills)])
        mismatch = self._reconcile()
        if mismatch:
            events.append(("reconciliation_mismatch", "error", f"engine and broker books differ: {mismatch}", {}))
            trip(self.state.risk, day, f"reconciliation mismatch: {mismatch}")

        commands = self._apply_commands(day, events)
        has_bar = np.zeros(n, bool)
        has_bar[rows_idx] = True
        close = self._update_closes(rows_idx, bar_close)
        market_value = float(np.nansum(self.qty * self.last_close))
        equity = self.state.cash + market_value
        prev = self.state.prev_equity or equity
        for etype, msg in assess(self.state.risk, equity, prev, day, self.cfg.risk):
            events.append((etype, "critical" if etype == "kill_switch" else "warning", msg, {}))

        # prediction: every model that is not quarantined scores the bar's symbols
        rows = self.buffer.rows()
        live_models = [m for m in self.models if m.key not in self.state.quarantined]
        predicted = predict_all(live_models, rows, self.buffer.sequences, self.index, n)
        scores = predicted.scores
        for key, error in predicted.failed.items():
            self.state.quarantined[key] = error
            events.append(("model_quarantined", "error", f"{key}: {error}", {}))
        for key, lacking in predicted.incomplete.items():
            events.append(
                ("incomplete_inputs", "warning", f"{key}: {len(lacking)} symbol(s) lack inputs", {"symbols": lacking})
            )

        # blending, per target and view
        sigma1 = self._sigma_bps()
        alpha = np.zeros(n)
        trace_blend: dict[str, dict[str, Any]] = {}
        for target in self.targets:
            spec = self.specs[target]
            sigma_h = sigma1 * np.sqrt(spec.horizon_bars)
            view_alphas = []
            for view in ("CROSS_SECTIONAL", "SYMBOL_SPECIFIC"):
                fam = [m for m in self.models if m.target == target and m.view == view and m.key in scores]
                if not fam:
                    continue
                a, info = self._blend_view(target, view, fam, scores, sigma_h)
                view_alphas.append(a)
                trace_blend[f"{target}/{view}"] = info
            if view_alphas:
                stacked = np.vstack(view_alphas)
                have = np.isfinite(stacked)
                cnt = have.sum(axis=0)
                alpha += np.where(cnt > 0, np.nansum(stacked, axis=0) / np.maximum(cnt, 1), 0.0)
        # arbitration: costs at the participation the unconstrained size would trade
        sigma_hold = sigma1 * np.sqrt(self.cfg.holding_bars)
        price = np.where(np.isfinite(close), close, self.last_close)
        cur_w = np.where(equity > 0, self.qty * np.nan_to_num(price) / equity, 0.0)
        _, w0 = sizing.target_weights(alpha, sigma_hold, self.cfg.sizing)
        with np.errstate(invalid="ignore", divide="ignore"):
            participation = np.where(
                volume > 0, np.abs(w0 - cur_w) * equity / np.nan_to_num(price, nan=np.inf) / volume, 1.0
            )
        cost = arbitration.cost_bps(self.cfg.costs, sigma_hold, participation)
        net = arbitration.net_alpha(alpha, cost)

        # gating
        spread_bps = 2 * self.cfg.costs.half_spread_bps
        gates = np.full(n, "", dtype=object)
        gates[~has_bar] = "stale: no bar at this timestamp"
        if spread_bps > self.cfg.gates.max_spread_bps:
            gates[:] = np.where(
                gates == "", f"spread {spread_bps:.1f} bps > {self.cfg.gates.max_spread_bps} bps", gates
            )
        if self.state.risk.paused:
            gates[:] = np.where(gates == "", "paused", gates)
        if not np.isfinite(sigma_hold).all():
            gates[:] = np.where((gates == "") & ~np.isfinite(sigma_hold), "no volatility estimate yet", gates)
        weak = (np.abs(alpha) - cost) <= self.cfg.gates.min_net_alpha_bps
        net = np.where(weak, 0.0, net)

        # sizing
        z, target_w = sizing.target_weights(net, sigma_hold, self.cfg.sizing)
        if self.state.risk.state == HALTED:
            target_w = np.zeros(n) if self.cfg.risk.flatten_on_halt else cur_w
        blocked = gates != ""
        target_w = np.where(blocked, cur_w, target_w)
        want = sizing.order_shares(
            target_w, cur_w, self.qty, np.nan_to_num(price), equity, self.cfg.sizing.no_trade_band_frac
        )
        want = np.where(blocked, 0.0, want)

        # risk: per-order checks and the gross limit
        final, notes = pre_trade(
            want, self.qty, np.nan_to_num(price), volume, equity, self.state.risk.state, self.cfg.risk
        )
        if self.state.risk.state == HALTED and not self.cfg.risk.flatten_on_halt:
            final = np.zeros(n)

        # execution: orders for the next bar's open
        decided = decide(
            self.cfg.account,
            ts_iso,
            self.universe,
            final,
            self.qty,
            gates,
            notes,
            want,
            target_w,
            weak,
            self.state.risk.state,
            self.state.risk.kill_reason,
        )
        orders, n_trade, n_hold, n_blocked = decided.orders, decided.n_trade, decided.n_hold, decided.n_blocked
        numbers = {
            "alpha_bps": alpha,
            "cost_bps": cost,
            "sigma_bps": sigma_hold,
            "z": z,
            "current_weight_frac": cur_w,
            "target_weight_frac": target_w,
        }
        decisions = decision_record.encode(
            self.universe,
            decided.actions,
            decided.reasons,
            scores,
            {k: v["score"] for k, v in trace_blend.items()},
            {**numbers, "net_alpha_bps": net, "sized_qty": want},
            gates,
            notes,
            final,
        )

        # realised IC of the cycles whose horizon has now elapsed
        realised_rows = self._realise(cycle_id)
        self.pending[cycle_id] = {"ts": ts, "scores": scores, "blend": {k: v["score"] for k, v in trace_blend.items()}}

        gross = float(np.nansum(np.abs(self.qty * price)))
        self.state.prev_equity = equity
        latency_ms = (time.perf_counter() - t0) * 1e3
        events.append(
            (
                "cycle_complete",
                "info",
                f"cycle {cycle_id} at {ts_iso}: {n_trade} trade, {n_hold} hold, {n_blocked} blocked; equity "
                f"{equity:,.2f} ({self.state.risk.state}{', paused' if self.state.risk.paused else ''})",
                {
                    "bar_ts": ts_iso,
                    "n_trade": n_trade,
                    "n_hold": n_hold,
                    "n_blocked": n_blocked,
                    "n_fills": len(new_fills),
                    "equity": equity,
                    "trading_state": self.state.risk.state,
                    "paused": self.state.risk.paused,
                    "latency_ms": round(latency_ms, 3),
                },
            )
        )
        with self.ledger.cycle() as con:
            con.execute(
                "insert into cycles values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cycle_id,
                    ts_iso,
                    int(in_sample),
                    self.state.risk.state,
                    int(self.state.risk.paused),
                    n_trade,
                    n_hold,
                    n_blocked,
                    latency_ms,
                    self.state.to_json(),
                ),
            )
            con.execute("insert into cycle_decisions values (?, ?, ?, ?)", (cycle_id, *decisions))
            self.ledger.insert_many(
                "orders",
                [(o.client_order_id, cycle_id, o.symbol, o.qty, int(o.reduce_only), o.submitted_ts) for o in orders],
            )
            self.ledger.insert_many(
                "fills",
                [
                    (f.fill_id, f.client_order_id, cycle_id, f.symbol, f.ts, f.qty, f.price, f.fee, f.requested_qty)
                    for f in new_fills
                ],
            )
            con.execute("delete from positions")
            self.ledger.insert_many(
                "positions",
                [
                    (
                        self.universe[i],
                        float(self.qty[i]),
                        float(self.avg_price[i]),
                        self.entry_ts[i],
                        float(self.last_close[i]),
                    )
                    for i in np.flatnonzero(self.qty != 0).tolist()
                ],  # fmt: skip
            )
            self.ledger.insert_many(
                "equity",
                [
                    (
                        cycle_id,
                        ts_iso,
                        self.state.cash,
                        market_value,
                        equity,
                        gross / equity if equity else 0.0,
                        float(np.nansum(self.qty * price)) / equity if equity else 0.0,
                        self.state.fees_cum,
                        self.state.risk.peak_equity,
                        self.state.risk.day_start_equity,
                    )
                ],
            )
            self.ledger.insert_many("realised_ic", realised_rows)
            for cid, result in commands:
                con.execute(
                    "update commands set applied_cycle = ?, applied_at = ?, result = ? where command_id = ?",
                    (cycle_id, utc_now_iso(), result, cid),
                )
            for key, reason in self.state.quarantined.items():
                con.execute(
                    "update models set quarantined_cycle = coalesce(quarantined_cycle, ?), quarantine_reason = ? "
                    "where model = ?",
                    (cycle_id, reason, key),
                )
            for etype, sev, msg, data in events:
                self.ledger.event(cycle_id, etype, msg, sev, **data)
        self.known_fills.update(f.fill_id for f in new_fills)
        self.broker.submit(orders)
        return CycleResult(
            cycle_id, ts_iso, n_trade, n_hold, n_blocked, equity, orders, latency_ms, self.state.risk.state
        )

    # --- stages' helpers ----------------------------------------------------------------------------------------
    def _blend_view(self, target, view, fam, scores, sigma_h) -> tuple[np.ndarray, dict[str, Any]]:
        keys = [m.key for m in fam]
        raw = np.vstack([scores[k] for k in keys])
        cs = view == "CROSS_SECTIONAL"
        Z = np.vstack([blending.zscore(r) for r in raw]) if cs else raw
        mu = np.array(
            [blending.prior_ic(m.holdout_ic, *self._realised(m.key), self.cfg.blend.prior_cycles) for m in fam]
        )
        cov_key = f"{target}/{view}"
        k = len(keys)
        cov = np.asarray(self.state.cov.get(cov_key) or np.eye(k).tolist())
        if cov.shape != (k, k):
            cov = np.eye(k)
        if cs:
            cov = blending.update_corr(cov, Z, self.cfg.blend.cov_halflife_cycles)
            self.state.cov[cov_key] = cov.tolist()
        else:
            cov = np.eye(k)  # one symbol per model: no cross-section to estimate a correlation on
        w = blending.ridge_weights(mu, cov, self.cfg.blend.ridge_lambda)
        score, ic = blending.blend(Z, w, mu, cov)
        if self.specs[target].kind == "fwd_ret" and not any(m.loaded.ranking for m in fam):  # all return forecasts
            present = np.isfinite(raw)
            ww = np.where(present, w[:, None], 0.0)
            tot = ww.sum(axis=0)
            forecast = np.where(tot > 0, (np.nan_to_num(raw) * ww).sum(axis=0) / np.where(tot > 0, tot, 1.0), np.nan)
            a = arbitration.alpha_from_returns(forecast, cs)
        else:
            spread = float(np.sqrt(max(w @ cov @ w, 1e-12)))
            a = arbitration.alpha_from_score(ic, sigma_h, score / spread)
        return a, {"score": score, "weights": dict(zip(keys, w.round(6).tolist(), strict=True)), "ic_estimate": ic}

    def restore_pending(self, cycles: list[tuple[int, str, str, str, str]]) -> None:
        """Reload the predictions of the last cycles whose horizon had not elapsed, from the ledger's
        ``(cycle_id, ts, models_json, blends_json, decisions_json)``: a resumed engine realises them as the
        uninterrupted one would (the JSON holds each score's shortest round-trip digits: the same bits)."""
        for cid, ts, *record in cycles:
            rec: dict[str, Any] = {"ts": datetime.fromisoformat(ts), "scores": {}, "blend": {}}
            for part, found in zip(("scores", "blend"), decision_record.scores(*record), strict=True):
                for key, by_symbol in found.items():
                    arr = np.full(len(self.universe), np.nan)
                    arr[[self.index[s] for s in by_symbol]] = list(by_symbol.values())
                    rec[part][key] = arr
            self.pending[int(cid)] = rec

    def _realised(self, key: str) -> tuple[float, int]:
        s, c = self.state.realised.get(key, [0.0, 0])
        return float(s), int(c)

    def _sigma_bps(self) -> np.ndarray:
        """Per symbol: the standard deviation (ddof 1) of its last VOL_WINDOW_BARS log close-to-close returns, in
        bps per bar (NaN until it has that many consecutive bars): the same window the targets' volatility uses."""
        if len(self.close_hist) <= VOL_WINDOW_BARS:
            return np.full(len(self.universe), np.nan)
        r = np.diff(np.log(np.vstack(self.close_hist)), axis=0)
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(r).all(axis=0), r.std(axis=0, ddof=1), np.nan) * 1e4

    def _realise(self, cycle_id: int) -> list[tuple]:
        """Realised IC rows for the predictions whose target's bars are all in the buffer now: per target, every
        model's and blend's scores against the realised target in one :func:`ml.metrics.row_ic` call."""
        out = []
        for cid in sorted(self.pending):
            rec = self.pending[cid]
            done = [t for t in self.targets if self.specs[t].reach_bars == cycle_id - cid]
            if not done:
                continue
            ts_iso = rec["ts"].isoformat()
            for t in done:
                keys = [m.key for m in self.models if m.target == t and m.key in rec["scores"]]
                scores = [rec["scores"][k] for k in keys]
                for view_key, score in sorted(rec["blend"].items()):
                    if view_key.startswith(f"{t}/"):
                        keys.append(f"{BLEND}{view_key}")
                        scores.append(score)
                if not keys:
                    continue
                y = self._realised_target(rec["ts"], self.specs[t])
                ic, cnt = row_ic(np.vstack(scores), np.broadcast_to(y, (len(keys), len(y))))
                for key, ic_k, n_k in zip(keys, ic.tolist(), cnt.tolist(), strict=True):
                    ic_v = ic_k if np.isfinite(ic_k) else None
                    out.append((cid, ts_iso, t, key, ic_v, int(n_k), cycle_id))
                    own = not key.startswith(BLEND) and cid >= self.loaded_cycle.get(key, 0)  # this model's own
                    if ic_v is not None and own:
                        s, c = self._realised(key)
                        self.state.realised[key] = [s + ic_v, c + 1]
        for cid in [c for c in self.pending if cycle_id - c >= self.max_reach]:
            del self.pending[cid]
        return out

    def _realised_target(self, ts: datetime, spec: TargetSpec) -> np.ndarray:
        """The target of ``spec`` at bar ``ts`` per universe symbol (NaN where it has no value), by training's
        definitions: a forward return from the bar window (:func:`ml.targets.realised_forward_return`), another kind
        (a cross-sectional or volatility-scaled transform) by :func:`ml.targets.add_targets` on the newest bars."""
        window = self.buffer.window
        if self._universe_rows[0] != len(window.symbols):  # the window learnt a symbol since: look again
            self._universe_rows = (len(window.symbols), *window.rows_of(self.universe))
        _, rows, known = self._universe_rows
        if spec.kind == "fwd_ret":  # the target is the forward return itself
            column, _, end = price_path(spec)
            times, prices = window.column("ts", rows, end + 1), window.column(column, rows, end + 1)
            return np.where(known, realised_forward_return(spec, prices, times, epoch_us(ts)), np.nan)
        bars = self.buffer.last(self.max_reach + 1)
        keys = pl.DataFrame({"ts": [ts] * len(self.universe), "symbol": self.universe})
        keys = keys.with_columns(pl.col("ts").cast(bars.schema["ts"]))
        frame = add_targets(keys, bars, [spec], self.interval_minutes)
        return frame[spec.name(self.interval_minutes)].cast(pl.Float64).fill_null(np.nan).to_numpy()

    def _apply_fill(self, f: Fill) -> None:
        i = self.index.get(f.symbol)
        if i is None:
            return
        old = self.qty[i]
        new = old + f.qty
        if old == 0 or np.sign(new) == -np.sign(old):  # opened from flat, or through zero: a new position
            self.avg_price[i], self.entry_ts[i] = f.price, f.ts
        elif np.sign(f.qty) == np.sign(old):  # increased: the average of the entry prices, weighted by shares
            self.avg_price[i] = (abs(old) * self.avg_price[i] + abs(f.qty) * f.price) / abs(new)
        if new == 0:  # closed (a reduction keeps the average entry price)
            self.avg_price[i], self.entry_ts[i] = np.nan, ""
        self.qty[i] = new
        self.state.cash -= f.qty * f.price + f.fee
        self.state.fees_cum += f.fee

    def _reconcile(self) -> str:
        broker = self.broker.positions()
        mine = {s: float(q) for s, q in zip(self.universe, self.qty, strict=True) if q != 0}
        diff = {
            s: (mine.get(s, 0.0), broker.get(s, 0.0))
            for s in set(mine) | set(broker)
            if mine.get(s, 0.0) != broker.get(s, 0.0)
        }
        if abs(self.broker.cash() - self.state.cash) > 0.005:
            diff["<cash>"] = (round(self.state.cash, 2), round(self.broker.cash(), 2))
        return "; ".join(f"{k}: engine {a}, broker {b}" for k, (a, b) in sorted(diff.items()))

    def _apply_commands(self, day: str, events: list) -> list[tuple[int, str]]:
        applied = []
        for cid, command, reason in self.ledger.pending_commands():
            risk = self.state.risk
            if command == "pause":
                risk.paused, result = True, "paused: no orders until resume"
            elif command == "resume":
                risk.paused, result = False, "resumed"
            elif command == "kill":
                trip(risk, day, f"manual kill: {reason}")
                result = "kill switch on (sticky for the trading day)"
            else:  # reset
                was = risk.kill_reason
                risk.kill_reason, risk.kill_day, risk.state = None, None, ACTIVE
                result = f"kill switch reset (was: {was})" if was else "nothing to reset"
            events.append(("command", "warning", f"{command} ({reason}): {result}", {"command_id": cid}))
            applied.append((cid, result))
        return applied
