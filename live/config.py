"""Frozen configs of the live engine: every parameter with its default and unit.

Units: alphas, costs, spreads, slippage and fees are **bps** (1e-4 of price or notional); weights, limits and
exposures are **fractions of portfolio value** (``_frac``); money is the quote currency; time is bars or seconds.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class CostConfig(BaseModel):
    """The cost model arbitration subtracts from |alpha| (bps of the traded notional, one way).

    Bars carry no quotes, so the half-spread is an assumption about the venue, not a measurement.

    Attributes:
        half_spread_bps: half the bid/ask spread (1.0).
        impact_coef: market impact is ``impact_coef * sigma_bps * sqrt(participation)``, with ``sigma_bps`` the
            symbol's volatility over the holding horizon and participation the order's share of the bar's
            volume (0.1).
    """

    model_config = _FROZEN
    half_spread_bps: float = Field(1.0, ge=0)
    impact_coef: float = Field(0.1, ge=0)


class GateConfig(BaseModel):
    """Gates a symbol must pass before it may trade.

    Attributes:
        max_spread_bps: block a symbol whose spread (``2 * half_spread_bps``) exceeds this (12.0).
        stale_after_bars: block a symbol whose last bar is more than this many bars old (0: it must have a bar at
            the cycle's timestamp).
        min_net_alpha_bps: trade only where ``|alpha| - cost`` exceeds this (0.0).
    """

    model_config = _FROZEN
    max_spread_bps: float = Field(12.0, gt=0)
    stale_after_bars: int = Field(0, ge=0)
    min_net_alpha_bps: float = Field(0.0, ge=0)


class SizingConfig(BaseModel):
    """From alpha to target weights.

    Attributes:
        z_clip: ``z = clip(alpha / sigma, -z_clip, z_clip)`` (3.0).
        weight_per_z_frac: target weight per unit of z (0.05: z = 1 is 5 % of portfolio value).
        no_trade_band_frac: hold when ``|target - current weight|`` is below this (0.008 = 80 bps of weight).
        max_gross_frac: scale every target weight down so that ``sum |w|`` is at most this (1.0).
    """

    model_config = _FROZEN
    z_clip: float = Field(3.0, gt=0)
    weight_per_z_frac: float = Field(0.05, gt=0)
    no_trade_band_frac: float = Field(0.008, ge=0)
    max_gross_frac: float = Field(1.0, gt=0)


class RiskConfig(BaseModel):
    """Portfolio limits (fractions of portfolio value) and per-order pre-trade checks.

    Attributes:
        daily_loss_frac: a loss of this share of the trading day's opening equity trips the kill switch (0.02).
        max_drawdown_frac: a drop of this share from peak equity trips the kill switch (0.10).
        max_position_frac: no position may exceed this share of equity after an order (0.20).
        max_gross_frac: gross exposure may not exceed this after the orders (1.0).
        reduce_at_frac_of_limit: at this share of the daily-loss or drawdown limit the state becomes REDUCING:
            only orders that reduce exposure (0.75).
        max_order_notional_frac: an order's notional may not exceed this share of equity (0.20).
        max_participation_frac: an order may not exceed this share of the bar's volume (0.10).
        flatten_on_halt: when HALTED, close positions (reducing orders only) instead of freezing them (True).
    """

    model_config = _FROZEN
    daily_loss_frac: float = Field(0.02, gt=0, lt=1)
    max_drawdown_frac: float = Field(0.10, gt=0, lt=1)
    max_position_frac: float = Field(0.20, gt=0)
    max_gross_frac: float = Field(1.0, gt=0)
    reduce_at_frac_of_limit: float = Field(0.75, gt=0, le=1)
    max_order_notional_frac: float = Field(0.20, gt=0)
    max_participation_frac: float = Field(0.10, gt=0, le=1)
    flatten_on_halt: bool = True


class BrokerConfig(BaseModel):
    """The paper broker: fills at the next bar's open.

    Attributes:
        initial_cash: the account's starting cash, quote currency (1,000,000).
        slippage_bps: the fill price is worse than the open by this (5.0; a buy pays open * (1 + 5e-4)).
        fee_bps: fee on the filled notional (1.0).
        max_volume_frac: a fill is capped at this share of the fill bar's volume; the rest is cancelled (0.10).
    """

    model_config = _FROZEN
    initial_cash: float = Field(1_000_000.0, gt=0)
    slippage_bps: float = Field(5.0, ge=0)
    fee_bps: float = Field(1.0, ge=0)
    max_volume_frac: float = Field(0.10, gt=0, le=1)


class BlendConfig(BaseModel):
    """Per target, how families are weighted (``live.engine.blending`` gives the formula).

    Attributes:
        ridge_lambda: the ridge term added to the families' score covariance (0.1).
        prior_cycles: weight, in cycles, of the holdout IC against the realised IC as it accrues (200).
        cov_halflife_cycles: half-life of the exponentially weighted score covariance (100).
    """

    model_config = _FROZEN
    ridge_lambda: float = Field(0.1, gt=0)
    prior_cycles: float = Field(200.0, gt=0)
    cov_halflife_cycles: float = Field(100.0, gt=0)


class EngineConfig(BaseModel):
    """One paper-trading account.

    Attributes:
        account: the ledger's folder under ``RESULTS/live/`` (``paper``).
        policy: the model policy, a name of ``configs/policies.yaml`` or one SELECT (``holdout_per_family``).
        holding_bars: bars a position is held for before the next decision can change it (1); a target is traded
            when its return window (entry at the next bar's open) fits in it; others are not loaded.
        allow_in_sample: trade bars the models' run saw (debugging only; every decision is labelled in-sample).
        strict: refuse models whose meta recorded no checksum (False).
        hot_reload: at every cycle boundary, switch to the models the policy picks now when the catalog changed
            (``live.reload``: verified first, only for bars they never saw; a failed load keeps the old models);
            resuming a ledger with other models is then a switch, not an error (False).
        costs, gates, sizing, risk, broker, blend: see their classes.
    """

    model_config = _FROZEN
    account: str = Field("paper", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    policy: str = "holdout_per_family"
    holding_bars: int = Field(1, ge=1)
    allow_in_sample: bool = False
    strict: bool = False
    hot_reload: bool = False
    costs: CostConfig = CostConfig()
    gates: GateConfig = GateConfig()
    sizing: SizingConfig = SizingConfig()
    risk: RiskConfig = RiskConfig()
    broker: BrokerConfig = BrokerConfig()
    blend: BlendConfig = BlendConfig()

    @model_validator(mode="after")
    def _gross(self) -> EngineConfig:
        if self.sizing.max_gross_frac > self.risk.max_gross_frac:
            raise ValueError(
                f"sizing.max_gross_frac {self.sizing.max_gross_frac} exceeds risk.max_gross_frac "
                f"{self.risk.max_gross_frac}: every cycle would breach the limit"
            )
        return self


def load_engine_config(path: str | Path | None, **overrides) -> EngineConfig:
    """The ``live:`` section of a run config YAML (absent: the defaults), with ``overrides`` on top."""
    section = {}
    if path is not None:
        doc = yaml.safe_load(Path(path).read_text()) or {}
        section = doc.get("live") or {}
        if not isinstance(section, dict):
            raise ValueError(f"{path}: live: must be a mapping")
    try:
        return EngineConfig.model_validate({**section, **{k: v for k, v in overrides.items() if v is not None}})
    except Exception as exc:
        raise ValueError(f"{path or '<defaults>'}: live: {exc}") from None
