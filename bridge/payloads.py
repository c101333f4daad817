"""The bridge's own payloads: what the dashboard needs beyond the contract endpoints (``contracts.bridge``).

Units follow the ledger: money in the quote currency, weights and exposures as fractions of equity, alphas and
costs in bps, timestamps ISO-8601 UTC (bar closes unless the name says otherwise).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class EquityPoint(BaseModel):
    """One cycle's mark at the bar's close."""

    cycle_id: int
    ts: str
    equity: float
    cash: float
    market_value: float
    drawdown_frac: float = Field(description="1 - equity / peak equity so far (0 at a new peak)")
    gross_frac: float
    net_frac: float
    fees_cum: float


class EquityHistory(BaseModel):
    """The equity curve, measured on: live realised (paper broker) bars after the models' data."""

    account: str
    initial_cash: float
    points: list[EquityPoint]
    downsampled_from: int | None = Field(None, description="the number of cycles when more than `max_points`")


class OrderRow(BaseModel):
    client_order_id: str
    cycle_id: int
    symbol: str
    qty: float = Field(description="signed whole shares: + buy, - sell")
    reduce_only: bool
    submitted_ts: str
    filled_qty: float
    status: Literal["open", "filled", "partial", "cancelled"] = Field(
        description="open: no fill bar yet; partial: filled less than asked, the rest cancelled"
    )


class FillRow(BaseModel):
    fill_id: str
    client_order_id: str
    cycle_id: int
    symbol: str
    ts: str
    qty: float
    price: float
    fee: float
    requested_qty: float


class CycleRow(BaseModel):
    cycle_id: int
    ts: str
    in_sample: bool
    trading_state: Literal["ACTIVE", "REDUCING", "HALTED"]
    paused: bool
    n_trade: int
    n_hold: int
    n_blocked: int
    latency_ms: float


class Decision(BaseModel):
    """One symbol's decision of a cycle, with every stage's numbers (``trace``)."""

    symbol: str
    action: Literal["TRADE", "HOLD", "BLOCKED"]
    reason: str
    alpha_bps: float | None
    cost_bps: float | None
    sigma_bps: float | None
    z: float | None
    current_weight_frac: float | None
    target_weight_frac: float | None
    order_qty: float
    trace: dict[str, Any]


class CycleDecisions(BaseModel):
    cycle: CycleRow
    decisions: list[Decision]


class ModelInUse(BaseModel):
    """A model the engine trades: the holdout IC it was picked on beside the IC it realised live (never mixed)."""

    model: str
    target: str
    family: str
    view: str
    model_dir: str
    policy: str = Field(description="the engine's model policy that picked it (a policy name, alias:NAME or a SELECT)")
    holdout_ic: float | None = Field(description="measured on the run's holdout (picked on it)")
    realised_ic: float | None = Field(description="live realised: mean over the cycles whose horizon has elapsed")
    realised_cycles: int
    data_end: str
    first_tradable_ts: str
    quarantined: bool
    quarantine_reason: str | None


class TrainingRun(BaseModel):
    """A training run the catalog indexed."""

    run_dir: str
    run_id: str
    run_instance_id: str
    timestamp: str | None
    complete: bool | None
    n_targets: int | None
    n_models: int
    best_holdout_ic: float | None = Field(description="the best model's holdout IC in the run")


class CommandAck(BaseModel):
    """A control command queued for the engine and, when it answered in time, its acknowledgement."""

    command_id: int
    command: Literal["pause", "resume", "kill", "reset"]
    reason: str
    acknowledged: bool = Field(description="the engine applied it within `wait_s`")
    applied_cycle: int | None = None
    applied_at: str | None = Field(None, description="wall-clock UTC time the engine applied it")
    result: str | None = None


class ControlRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why (kept in the ledger's command row)")
    wait_s: float = Field(5.0, ge=0, le=60, description="how long to wait for the engine's acknowledgement")
