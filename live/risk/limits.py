"""The risk stage.

Trading states:

* ``ACTIVE``: every order the sizing wants, within the per-order checks;
* ``REDUCING``: only orders that bring a position towards zero (never through it); entered when the day's loss or
  the drawdown reaches ``reduce_at_frac_of_limit`` of its limit;
* ``HALTED``: the kill switch is on: with ``flatten_on_halt`` every position is closed (reducing orders only),
  otherwise no orders at all.

The kill switch trips on a daily loss of ``daily_loss_frac`` of the day's opening equity, a drawdown of
``max_drawdown_frac`` from peak equity, or a ``kill`` command; it carries its reason and is sticky for the trading
day (the UTC date of the bar): it clears at the next day's first cycle, or by a ``reset`` command.

Pre-trade checks, per order, in this order: reducing-only (state), position limit (``max_position_frac`` of
equity after the order), notional (``max_order_notional_frac``), participation (``max_participation_frac`` of the
bar's volume), and last the gross limit over all orders (orders that raise gross are scaled down together).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from live.config import RiskConfig

ACTIVE, REDUCING, HALTED = "ACTIVE", "REDUCING", "HALTED"


@dataclass
class RiskState:
    """What the risk stage carries from cycle to cycle (persisted in the ledger).

    Attributes:
        day: the trading day (UTC date) of the last cycle.
        day_start_equity: equity at the close before the day's first cycle (quote currency).
        peak_equity: the highest equity seen.
        kill_reason: why the kill switch is on (``None``: off).
        kill_day: the day it tripped (it clears on the next).
        paused: a ``pause`` command is in force (no orders; positions kept).
        state: the trading state after the last assessment.
    """

    day: str = ""
    day_start_equity: float = 0.0
    peak_equity: float = 0.0
    kill_reason: str | None = None
    kill_day: str | None = None
    paused: bool = False
    state: str = ACTIVE

    def to_dict(self) -> dict:
        return asdict(self)


def _day_roll(risk: RiskState, equity_at_last_close: float, day: str) -> list[tuple[str, str]]:
    events = []
    if risk.kill_reason is not None and risk.kill_day != day:
        events.append(("kill_switch_cleared", f"new trading day {day}: kill switch ({risk.kill_reason}) cleared"))
        risk.kill_reason, risk.kill_day = None, None
    risk.day, risk.day_start_equity = day, equity_at_last_close
    return events


def assess(risk: RiskState, equity: float, prev_equity: float, day: str, cfg: RiskConfig) -> list[tuple[str, str]]:
    """Update ``risk`` with this cycle's equity (``prev_equity``: at the previous cycle's close, the new day's
    opening equity when the day changes); the events it raises as (type, message)."""
    events = _day_roll(risk, prev_equity, day) if day != risk.day else []
    risk.peak_equity = max(risk.peak_equity, equity, prev_equity)
    daily_loss = max(0.0, 1.0 - equity / risk.day_start_equity) if risk.day_start_equity > 0 else 0.0
    drawdown = max(0.0, 1.0 - equity / risk.peak_equity) if risk.peak_equity > 0 else 0.0
    if risk.kill_reason is None:
        if daily_loss >= cfg.daily_loss_frac:
            trip(risk, day, f"daily loss {daily_loss:.2%} reached the {cfg.daily_loss_frac:.2%} limit")
        elif drawdown >= cfg.max_drawdown_frac:
            trip(risk, day, f"drawdown {drawdown:.2%} reached the {cfg.max_drawdown_frac:.2%} limit")
        if risk.kill_reason is not None:
            events.append(("kill_switch", risk.kill_reason))
    before = risk.state
    if risk.kill_reason is not None:
        risk.state = HALTED
    elif (
        daily_loss >= cfg.reduce_at_frac_of_limit * cfg.daily_loss_frac
        or drawdown >= cfg.reduce_at_frac_of_limit * cfg.max_drawdown_frac
    ):
        risk.state = REDUCING
    else:
        risk.state = ACTIVE
    if risk.state != before:
        events.append(
            ("trading_state", f"{before} -> {risk.state} (daily loss {daily_loss:.2%}, drawdown {drawdown:.2%})")
        )
    return events


def trip(risk: RiskState, day: str, reason: str) -> None:
    """Turn the kill switch on (sticky for ``day``)."""
    risk.kill_reason, risk.kill_day, risk.state = reason, day, HALTED


def pre_trade(
    qty: np.ndarray,
    current_qty: np.ndarray,
    price: np.ndarray,
    volume: np.ndarray,
    equity: float,
    state: str,
    cfg: RiskConfig,
) -> tuple[np.ndarray, list[list[str]]]:
    """The orders after the per-order checks and the gross limit, and per symbol the checks that cut its order."""
    qty = np.asarray(qty, dtype=float).copy()
    notes: list[list[str]] = [[] for _ in range(len(qty))]

    def cut(mask: np.ndarray, new: np.ndarray, why: str) -> None:
        changed = mask & (new != qty)
        for i in np.flatnonzero(changed):
            notes[i].append(why)
        qty[:] = np.where(changed, new, qty)

    reduces = current_qty * qty < 0
    towards_zero = np.sign(qty) * np.minimum(np.abs(qty), np.abs(current_qty))
    if state != ACTIVE:
        cut(np.ones(len(qty), bool), np.where(reduces, towards_zero, 0.0), f"{state}: reducing orders only")
    cap = np.floor(cfg.max_position_frac * equity / np.where(price > 0, price, np.inf))
    after = current_qty + qty
    over = (np.abs(after) > cap) & (np.abs(after) >= np.abs(current_qty))  # a reduction may stay over the cap
    cut(over, np.sign(after) * cap - current_qty, "max_position")
    notional_cap = np.floor(cfg.max_order_notional_frac * equity / np.where(price > 0, price, np.inf))
    cut(np.abs(qty) > notional_cap, np.sign(qty) * notional_cap, "max_order_notional")
    part_cap = np.floor(cfg.max_participation_frac * np.nan_to_num(volume))
    cut(np.abs(qty) > part_cap, np.sign(qty) * part_cap, "max_participation")
    after = current_qty + qty
    flips = current_qty * after < 0
    base = np.where(flips, 0.0, np.abs(current_qty))  # the exposure the order keeps before it adds any
    raising = np.abs(after) > base
    extra = ((np.abs(after) - base) * price)[raising].sum()
    gross_after = np.abs(after * price).sum()
    limit = cfg.max_gross_frac * equity
    if gross_after > limit and extra > 0:
        scale = max(0.0, limit - (gross_after - extra)) / extra
        scaled = np.sign(after) * (base + np.floor((np.abs(after) - base) * scale))
        cut(raising, scaled - current_qty, "max_gross")
    return qty, notes
