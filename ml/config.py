"""Run configuration (``configs/*.yaml``), validated by pydantic; its digest is the manifest's config_digest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.families import canonical_family
from contracts.io import canonical_json, sha256_text
from ml.cv import CVConfig
from ml.synthetic import SyntheticMarketConfig
from ml.targets import TargetSpec


class RoutingThresholds(BaseModel):
    """Routing thresholds, realistic for returns (see ``ml.routing`` for the rule order).

    Attributes:
        cs_ic_min: mean per-timestamp IC the pooled CROSS_SECTIONAL view needs to count as good (0.01).
        cs_t_min: t-stat of that IC (non-overlapping timestamps) it needs too (3.0).
        symbol_ic_min: time-series IC one symbol's own model needs to count as good (0.02).
        symbol_t_min: t-stat of that IC (3.0; strict, since many symbols are tested at once).
        frac_most: share of good symbols that counts as "most symbols" (0.5).
        frac_some: share of good symbols that counts as "some symbols" (0.1); below it, per-symbol wins
            are treated as multiple-testing noise.
        suspicious_skill01: skill01 at or above which a score is suspicious (0.90, i.e. IC >= 0.8).
        suspicious_t_min: t-stat a suspicious score needs to be believed (50.0).
        max_symbols_symbol_specific: above this many symbols per-symbol models fall back to CROSS_SECTIONAL (200).
    """

    model_config = ConfigDict(frozen=True)

    cs_ic_min: float = 0.01
    cs_t_min: float = 3.0
    symbol_ic_min: float = 0.02
    symbol_t_min: float = 3.0
    frac_most: float = Field(0.5, gt=0, le=1)
    frac_some: float = Field(0.1, ge=0, le=1)
    suspicious_skill01: float = Field(0.90, gt=0.5, le=1)
    suspicious_t_min: float = 50.0
    max_symbols_symbol_specific: int = Field(200, ge=1)


class RunConfig(BaseModel):
    """One training run's configuration.

    Attributes:
        run_id: names ``RESULTS/runs/<run_id>/``.
        market: the synthetic market to generate (the embedded data set).
        targets: forward-return targets to rank and train.
        features: feature names from ``ml.features`` (``None`` = all).
        families: model families to train for every routed target/view.
        ranking_family: family used to rank targets and evaluate per-symbol skill.
        family_params: per-family hyper-parameter overrides.
        ranking_params: overrides used only while ranking (e.g. fewer boosting rounds).
        cv: walk-forward CV settings.
        routing: routing thresholds.
        seed: seed for every model fit.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = "demo"
    market: SyntheticMarketConfig = SyntheticMarketConfig()
    targets: tuple[TargetSpec, ...] = (TargetSpec(horizon_bars=1), TargetSpec(horizon_bars=3, delay_bars=1))
    features: tuple[str, ...] | None = None
    families: tuple[str, ...] = ("LightGBM",)
    ranking_family: str = "LightGBM"
    family_params: dict[str, dict[str, Any]] = {}
    ranking_params: dict[str, Any] = {"num_boost_round": 60}
    cv: CVConfig = CVConfig()
    routing: RoutingThresholds = RoutingThresholds()
    seed: int = 42

    @field_validator("families")
    @classmethod
    def _families(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(canonical_family(f) for f in v)

    @field_validator("ranking_family")
    @classmethod
    def _ranking_family(cls, v: str) -> str:
        return canonical_family(v)

    @property
    def interval_minutes(self) -> float:
        return float(self.market.interval_minutes)

    def target_names(self) -> list[str]:
        return [t.name(self.interval_minutes) for t in self.targets]

    def target_spec(self, name: str) -> TargetSpec:
        for t in self.targets:
            if t.name(self.interval_minutes) == name:
                return t
        raise KeyError(f"target {name!r} is not in this run's config ({self.target_names()})")

    def digest(self) -> str:
        """sha256 of the canonical JSON of the config: the manifest's ``config_digest``."""
        return sha256_text(canonical_json(self.model_dump(mode="json")))


def load_run_config(path: str | Path) -> RunConfig:
    """Read a YAML run config; errors name the file and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read run config: {exc}") from None
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
        raise ValueError("invalid run config\n" + "\n".join(lines)) from None
    except KeyError as exc:
        raise ValueError(f"{path}: {exc.args[0]}") from None
