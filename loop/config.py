"""The closed loop's configs (the ``loop:`` section of a run config YAML): every parameter, its default and unit."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class RetrainConfig(BaseModel):
    """Retraining when new data lands (``assets.loop_sensors.retrain_on_new_data``).

    Attributes:
        min_new_partitions: request training when the bars hold at least this many daily partitions after the
            newest complete run's data end (1).
        min_minutes_between_runs: and the last retrain this sensor requested is at least this old (60.0 minutes;
            decay-triggered retrains are limited by ``DecayConfig.cooldown_cycles`` instead).
    """

    model_config = _FROZEN
    min_new_partitions: int = Field(1, ge=1)
    min_minutes_between_runs: float = Field(60.0, ge=0)


class DecayConfig(BaseModel):
    """The decay test (``loop.decay``).

    Attributes:
        window_horizons: K, the realised horizons (non-overlapping) in the test's sample (30).
        p_value: fire when the one-sided p-value is below this (0.01).
        min_drop_ic: and the realised mean is at least this far below the holdout IC (0.02, IC units).
        cooldown_cycles: after a target fired, do not fire it again for this many engine cycles (100).
    """

    model_config = _FROZEN
    window_horizons: int = Field(30, ge=3)
    p_value: float = Field(0.01, gt=0, lt=0.5)
    min_drop_ic: float = Field(0.02, ge=0)
    cooldown_cycles: int = Field(100, ge=0)


class PromotionConfig(BaseModel):
    """When a challenger replaces the champion (``loop.promotion``).

    Attributes:
        margin_ic: the challenger's mean IC on the common window must exceed the champion's by at least this
            (0.01, in IC units).
        min_timestamps: the fewest bar timestamps both models are scored on (100); fewer: refused as too little
            unseen data.
        min_t_stat: the challenger's own t-stat on the window must reach this (2.0).
    """

    model_config = _FROZEN
    margin_ic: float = Field(0.01, ge=0)
    min_timestamps: int = Field(100, ge=2)
    min_t_stat: float = 2.0


class LoopConfig(BaseModel):
    """The ``loop:`` section: retraining, decay detection and promotion."""

    model_config = _FROZEN
    retrain: RetrainConfig = RetrainConfig()
    decay: DecayConfig = DecayConfig()
    promotion: PromotionConfig = PromotionConfig()


def loop_config(section: dict[str, Any], source: str = "<run config>") -> LoopConfig:
    """The ``loop:`` section of a run config, validated.

    Raises:
        ValueError: naming the config and the field.
    """
    try:
        return LoopConfig.model_validate(section or {})
    except ValidationError as exc:
        raise ValueError(f"{source}: loop: {exc}") from None
