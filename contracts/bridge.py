"""LIVE_TRADING → DASHBOARD payloads: /api/state, /api/positions, /api/risk/status, /ws/events, /ws/training."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EngineStatus = Literal["running", "paused", "stopped", "error"]
EngineStage = Literal["idle", "prediction", "blending", "arbitration", "gating", "sizing", "risk", "execution"]
ENGINE_STAGES: tuple[str, ...] = (
    "idle",
    "prediction",
    "blending",
    "arbitration",
    "gating",
    "sizing",
    "risk",
    "execution",
)
Severity = Literal["debug", "info", "warning", "error", "critical"]


def utc_now_iso() -> str:
    """The current time as a UTC ISO-8601 string (``...+00:00``)."""
    return datetime.now(UTC).isoformat()


def _require_utc(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO timestamp") from None
    if parsed.utcoffset() is None or parsed.utcoffset().total_seconds() != 0:
        raise ValueError(f"{value!r} must be UTC (events rule 2)")
    return value


class EngineState(BaseModel):
    """``/api/state``: the engine's status and pipeline stage."""

    model_config = ConfigDict(extra="allow")

    status: EngineStatus
    current_stage: EngineStage
    last_cycle: str | None
    uptime_seconds: float = Field(ge=0, allow_inf_nan=False)
    cycle_count: int = Field(0, ge=0)
    symbols_active: int = Field(0, ge=0)


class Position(BaseModel):
    """One row of ``/api/positions``. ``weight`` = market_value / total portfolio value."""

    symbol: str
    shares: int
    entry_price: float
    current_price: float
    market_value: float
    unrealized_pnl: float
    unrealized_pnl_pct: float
    weight: float
    entry_time: str | None = None
    side: Literal["long", "short"]


class PositionsPayload(BaseModel):
    """``/api/positions``; positions sorted by symbol (rule 1)."""

    positions: list[Position]
    total_positions: int
    long_count: int
    short_count: int
    total_market_value: float

    @model_validator(mode="after")
    def _sorted(self) -> PositionsPayload:
        symbols = [p.symbol for p in self.positions]
        if symbols != sorted(symbols):
            raise ValueError("positions rule 1: positions must be sorted by symbol")
        return self


class RiskWarning(BaseModel):
    type: str
    message: str
    severity: str


class RiskStatus(BaseModel):
    """``/api/risk/status``; limits and exposures are fractions of portfolio value despite the ``_pct`` names."""

    trading_allowed: bool
    kill_switch_active: bool
    kill_switch_reason: str | None = None
    daily_pnl_pct: float
    daily_loss_limit_pct: float
    drawdown_pct: float
    max_drawdown_limit_pct: float
    gross_exposure: float
    net_exposure: float
    max_gross_exposure: float
    warnings: list[RiskWarning]
    last_check: str


class EngineEvent(BaseModel):
    """A ``/ws/events`` message; ``timestamp`` is UTC ISO (rule 2)."""

    event_type: str
    timestamp: str
    severity: Severity
    message: str
    data: dict[str, Any] = {}

    _utc = field_validator("timestamp")(classmethod(lambda cls, v: _require_utc(v)))


class TrainingEvent(BaseModel):
    """A ``/ws/training`` message; ``run_id`` equals the manifest's run_id (rule 2)."""

    model_config = ConfigDict(extra="allow")

    event_type: Literal["progress", "stage_change", "target_complete", "run_complete", "error"]
    timestamp: str
    run_id: str
    stage: str | None = None
    progress_pct: float | None = None
    current_target: str | None = None
    targets_complete: int | None = None
    targets_total: int | None = None
    target: str | None = None
    status: Literal["success", "failed", "skipped"] | None = None
    models_trained: int | None = None
    best_auc: float | None = None
    message: str | None = None

    _utc = field_validator("timestamp")(classmethod(lambda cls, v: _require_utc(v)))

    @field_validator("progress_pct")
    @classmethod
    def _pct(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v <= 100:
            raise ValueError(f"progress_pct {v} outside [0, 100]")
        return v
