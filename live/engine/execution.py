"""The execution stage's decisions: every symbol's action (TRADE, HOLD or BLOCKED) with its reason, and the orders
for the next bar's open (deterministic client order ids: a pure function of the cycle's bar and the symbol)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from live.broker.base import Order
from live.risk.limits import ACTIVE, HALTED


def client_order_id(account: str, ts: str, symbol: str) -> str:
    """The order id of ``symbol`` at the cycle of bar ``ts``: a pure function, so a repeated cycle repeats it."""
    return f"{account}-{ts[:19].replace('-', '').replace(':', '')}-{symbol}"


@dataclass(frozen=True)
class Decisions:
    """Per universe symbol: ``actions`` and ``reasons``; the ``orders`` of the TRADE symbols; the counts."""

    actions: list[str]
    reasons: list[str]
    orders: list[Order]
    n_trade: int
    n_hold: int
    n_blocked: int


def decide(
    account: str,
    ts_iso: str,
    universe: list[str],
    final: np.ndarray,
    qty: np.ndarray,
    gates: np.ndarray,
    notes: list[list[str]],
    want: np.ndarray,
    target_w: np.ndarray,
    weak: np.ndarray,
    risk_state: str,
    kill_reason: str | None,
) -> Decisions:
    """The action of each symbol, in this order of precedence:

    * BLOCKED with its gate (``gates[i]`` not empty: stale, spread, paused, no volatility yet);
    * TRADE ``final[i]`` shares after the risk stage, ``reduce`` when it brings the position nearer zero, else
      ``open/increase`` (reduce-only unless the trading state is ACTIVE);
    * BLOCKED ``HALTED: <kill reason>`` when the kill switch is on and nothing is traded;
    * HOLD with the risk stage's cuts (``notes[i]``), else ``inside the no-trade band`` (a target weight the band
      swallowed), ``no edge net of cost`` (|alpha| not above its cost) or ``at target``.
    """
    blocked = gates != ""
    trade = ~blocked & (final != 0)
    halted = ~blocked & ~trade & (risk_state == HALTED)
    hold = ~blocked & ~trade & ~halted
    reasons = np.where(want == 0, np.where(target_w != 0, "inside the no-trade band", "at target"), "at target").astype(
        object
    )
    reasons = np.where(weak & ~((want == 0) & (target_w != 0)), "no edge net of cost", reasons).astype(object)
    for i in np.flatnonzero(hold):
        if notes[i]:
            reasons[i] = "; ".join(notes[i])
    reasons[blocked] = gates[blocked]
    reasons[trade] = np.where(np.abs(qty + final) < np.abs(qty), "reduce", "open/increase")[trade]
    reasons[halted] = f"HALTED: {kill_reason}"
    actions = np.where(trade, "TRADE", np.where(hold, "HOLD", "BLOCKED"))
    reduce_only = risk_state != ACTIVE
    orders = [
        Order(client_order_id(account, ts_iso, universe[i]), universe[i], float(final[i]), reduce_only, ts_iso)
        for i in np.flatnonzero(trade)
    ]
    return Decisions(
        actions.tolist(), reasons.tolist(), orders, int(trade.sum()), int(hold.sum()), int((blocked | halted).sum())
    )
