"""Run configuration (``configs/*.yaml``), validated by pydantic; its digest is the manifest's config_digest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contracts.families import POINTWISE_LOSS, RANKING_LOSSES, canonical_family, family_spec
from contracts.io import canonical_json, sha256_text
from contracts.model_meta import CS_TARGET_TYPES
from ml.cv import CVConfig, HoldoutConfig
from ml.metrics import EvaluationConfig
from ml.selection import SelectionConfig
from ml.synthetic import SyntheticMarketConfig
from ml.targets import TargetSpec


def _family(name: str) -> str:
    try:
        return canonical_family(name)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


class RoutingThresholds(BaseModel):
    """Routing thresholds, realistic for returns (see ``ml.routing`` for the rule order). Every number is compared
    with walk-forward CV figures on the development data, never with the holdout.

    Attributes:
        cs_ic_min: mean per-timestamp IC the pooled CROSS_SECTIONAL view needs to count as good (0.01).
        cs_t_min: t-stat of that IC (non-overlapping timestamps) it needs too (3.0).
        symbol_ic_min: time-series IC one symbol's own model needs to count as good (0.02).
        symbol_t_min: t-stat of that IC (3.0; strict, since many symbols are tested at once).
        min_net_spread_bps: net spread after costs (``evaluation.cost_bps`` on two-way turnover, bps per holding
            period) the pooled view, or a symbol, needs too (0.0: the signal must at least pay its costs).
        frac_most: share of good symbols that counts as "most symbols" (0.5).
        frac_some: share of good symbols that counts as "some symbols" (0.1; at most ``frac_most``); below it,
            per-symbol wins are treated as multiple-testing noise.
        max_abs_ic_cs: a pooled view whose ``|mean IC|`` exceeds this is BLOCKED as ``suspicious``, whatever its
            t-stat (0.15). Real cross-sectional return signals live at |IC| 0.02-0.06 and rarely pass 0.1; the
            synthetic market's planted pooled signals are 0.048 and 0.056 (``ml.synthetic.documented_ics``).
        max_abs_ic_symbol: a symbol whose own model's ``|ts_IC|`` exceeds this is ``suspicious``: named in the
            reason, never good, never traded (0.35). Real per-symbol time-series ICs rarely pass 0.1; the synthetic
            market's planted per-symbol effects are deliberately strong (documented 0.26 for the gap symbols and
            0.20 for the wick symbols, ~11 % lower when measured) and stay below it.
        max_symbols_symbol_specific: with more good symbols than this, per-symbol models fall back to
            CROSS_SECTIONAL (200).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cs_ic_min: float = 0.01
    cs_t_min: float = 3.0
    symbol_ic_min: float = 0.02
    symbol_t_min: float = 3.0
    min_net_spread_bps: float = 0.0
    frac_most: float = Field(0.5, gt=0, le=1)
    frac_some: float = Field(0.1, ge=0, le=1)
    max_abs_ic_cs: float = Field(0.15, gt=0, le=1)
    max_abs_ic_symbol: float = Field(0.35, gt=0, le=1)
    max_symbols_symbol_specific: int = Field(200, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            old = sorted(k for k in ("suspicious_skill01", "suspicious_t_min") if k in data)
            if old:
                raise ValueError(
                    f"{old} were removed: a leak has a huge IC and a huge t together, so the guard is now a bound on "
                    "|IC| alone; use max_abs_ic_cs and max_abs_ic_symbol"
                )
        return data

    @model_validator(mode="after")
    def _fractions(self) -> RoutingThresholds:
        if self.frac_some > self.frac_most:
            raise ValueError(f"frac_some {self.frac_some} must not exceed frac_most {self.frac_most}")
        return self


class RunConfig(BaseModel):
    """One training run's configuration.

    Attributes:
        run_id: names ``RESULTS/runs/<run_id>/``.
        data_source: ``synthetic`` (generate ``market``) or ``landing`` (ingest files dropped into
            ``RESULTS/lake/landing/``).
        interval_minutes: bar interval trained on; for ``synthetic`` it defaults to the market's.
        market: the synthetic market to generate (the embedded data set).
        targets: targets to rank and train.
        features: feature names from ``ml.features`` (``None`` = all).
        families: model families trained for every CROSS_SECTIONAL target (unless ``target_families`` names it).
            Feature-table families (LightGBM, …, and the rankers LightGBMRanker, XGBoostRanker) and raw-sequence
            families (LSTM, Transformer: contract 1.3) alike. A family with a ranking objective (the rankers, or a
            torch family whose ``loss`` is ``pairwise_logistic``/``listwise_softmax``: contract 1.4) needs a
            ``cs_percentile``, ``cs_zscore`` or ``vol_scaled`` target.
        target_families: per target name, the families its CROSS_SECTIONAL view trains instead of ``families``
            (e.g. a ranking target's rankers and sequence models; ``{}``).
        symbol_specific_families: families trained per symbol (``None`` = the feature-table, pointwise ones of
            ``families``; a ranking or raw-sequence family here is an error).
        ranking_families: families that rank targets and score per-symbol skill (at least two, so that the
            feature-importance consensus is one).
        family_params: per-family hyper-parameter overrides for the final models.
        ranking_params: per-family overrides of the pooled ranking models (e.g. fewer boosting rounds).
        symbol_ranking_params: per-family overrides of the per-symbol ranking models, which see one symbol's rows
            (``None`` = ``ranking_params``; a leaf-size floor sized for the pooled panel makes a per-symbol tree
            constant).
        selection: feature selection (top-K, correlation pruning).
        holdout: the final stretch of time no decision reads; models report and are picked by their holdout
            metrics (default: the final 20 % of timestamps).
        cv: walk-forward CV settings (on the data before the holdout).
        evaluation: how predictions are scored: costs, the quantile portfolio, per-symbol windows.
        routing: routing thresholds.
        seed: seed for every model fit.
        workers: threads that rank targets and fit a group's models at once (``None``, the default: one per CPU
            core). Not part of the training digest: every fit is single-threaded and seeded, so the results do not
            depend on it (``ml.parallel``).
        live: the paper-trading engine's settings, validated by ``live.config.EngineConfig`` (not part of the
            training digest: changing how the engine trades retrains nothing).
        train_window_days: train, select and hold out on only the newest this many daily partitions of the
            features (``None``, the default: every partition). A retrain after a regime change then learns the
            new regime instead of averaging it with years of the old one.
        loop: the closed loop's retraining, decay and promotion settings, validated by ``loop.config.LoopConfig``
            (``loop.config.loop_config``; not part of the training digest).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = "demo"
    data_source: Literal["synthetic", "landing"] = "synthetic"
    interval_minutes: float | None = Field(None, gt=0, le=1440)
    market: SyntheticMarketConfig = SyntheticMarketConfig()
    targets: tuple[TargetSpec, ...] = (TargetSpec(horizon_bars=1), TargetSpec(horizon_bars=3, delay_bars=3))
    features: tuple[str, ...] | None = None
    families: tuple[str, ...] = ("LightGBM",)
    target_families: dict[str, tuple[str, ...]] = {}
    symbol_specific_families: tuple[str, ...] | None = None
    ranking_families: tuple[str, ...] = ("ElasticNet", "LightGBM")
    family_params: dict[str, dict[str, Any]] = {}
    ranking_params: dict[str, dict[str, Any]] = {"LightGBM": {"num_boost_round": 60}}
    symbol_ranking_params: dict[str, dict[str, Any]] | None = None
    selection: SelectionConfig = SelectionConfig()
    holdout: HoldoutConfig = HoldoutConfig()
    cv: CVConfig = CVConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    routing: RoutingThresholds = RoutingThresholds()
    seed: int = 42
    workers: int | None = Field(None, ge=1)
    live: dict[str, Any] = {}
    train_window_days: int | None = Field(None, ge=1)
    loop: dict[str, Any] = {}

    @field_validator("target_families")
    @classmethod
    def _target_families(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {t: tuple(_family(f) for f in fams) for t, fams in v.items()}

    @field_validator("families", "ranking_families", "symbol_specific_families")
    @classmethod
    def _families(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if v is None else tuple(_family(f) for f in v)

    @field_validator("ranking_families")
    @classmethod
    def _two_rankers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) < 2:
            raise ValueError("rank with at least two families, so that the feature-importance consensus is one")
        return v

    @field_validator("family_params", "ranking_params", "symbol_ranking_params")
    @classmethod
    def _param_families(cls, v: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]] | None:
        return None if v is None else {_family(k): dict(p) for k, p in v.items()}

    @model_validator(mode="after")
    def _interval(self) -> RunConfig:
        if self.data_source == "landing" and self.interval_minutes is None:
            raise ValueError("interval_minutes is required when data_source is 'landing'")
        if (
            self.data_source == "synthetic"
            and self.interval_minutes is not None
            and self.interval_minutes != self.market.interval_minutes
        ):
            raise ValueError(
                f"interval_minutes {self.interval_minutes} differs from market.interval_minutes "
                f"{self.market.interval_minutes}"
            )
        return self

    @model_validator(mode="after")
    def _family_inputs(self) -> RunConfig:
        names = self.target_names()
        unknown = sorted(set(self.target_families) - set(names))
        if unknown:
            raise ValueError(f"target_families names target(s) {unknown} that are not in targets ({names})")
        for fam, params in self.family_params.items():
            loss = params.get("loss", POINTWISE_LOSS)
            if family_spec(fam).objective == "loss" and loss not in (POINTWISE_LOSS, *RANKING_LOSSES):
                raise ValueError(
                    f"family_params.{fam}.loss: {loss!r}; choose one of {(POINTWISE_LOSS, *RANKING_LOSSES)}"
                )
        for fam in self.ranking_families:
            if family_spec(fam).input_mode != "features":
                raise ValueError(f"ranking_families: {fam} reads raw sequences; target ranking reads the feature table")
        for fam in self.symbol_specific_families or ():
            if not self._per_symbol(fam):
                raise ValueError(
                    f"symbol_specific_families: {fam} is a ranking or raw-sequence family, trained for "
                    "CROSS_SECTIONAL views only (a ranking needs a cross-section)"
                )
        for spec_t in self.targets:
            target = spec_t.name(self.bar_interval_minutes)
            for fam in self.families_for(target):
                if family_spec(fam).is_ranking(self.family_params.get(fam)) and spec_t.kind not in CS_TARGET_TYPES:
                    where = f"target_families.{target}" if target in self.target_families else "families"
                    raise ValueError(
                        f"{where}: {fam} trains a ranking objective, which needs a {'/'.join(CS_TARGET_TYPES)} "
                        f"target, not {target!r}; add e.g. {{kind: cs_percentile, ...}} to targets and list it under "
                        "target_families"
                    )
        return self

    def families_for(self, target: str) -> tuple[str, ...]:
        """The families trained for ``target``'s CROSS_SECTIONAL view."""
        return self.target_families.get(target, self.families)

    @property
    def bar_interval_minutes(self) -> float:
        """The bar interval in minutes (the config's, or the synthetic market's)."""
        return float(self.interval_minutes if self.interval_minutes is not None else self.market.interval_minutes)

    def _per_symbol(self, family: str) -> bool:
        """Whether ``family`` can train one symbol's model: it reads features with a pointwise objective."""
        spec = family_spec(family)
        return spec.input_mode == "features" and not spec.is_ranking(self.family_params.get(family))

    @property
    def ss_families(self) -> tuple[str, ...]:
        """The families trained per symbol: ``symbol_specific_families``, else those of ``families`` that can."""
        if self.symbol_specific_families is not None:
            return self.symbol_specific_families
        return tuple(f for f in self.families if self._per_symbol(f))

    def target_names(self) -> list[str]:
        return [t.name(self.bar_interval_minutes) for t in self.targets]

    def target_spec(self, name: str) -> TargetSpec:
        for t in self.targets:
            if t.name(self.bar_interval_minutes) == name:
                return t
        raise KeyError(f"target {name!r} is not in this run's config ({self.target_names()})")

    def digest(self) -> str:
        """sha256 of the canonical JSON of the config: the manifest's ``config_digest``."""
        unset = {"train_window_days"} if self.train_window_days is None else set()  # digests before it existed
        unset |= {"target_families"} if not self.target_families else set()
        return sha256_text(canonical_json(self.model_dump(mode="json", exclude={"live", "workers", "loop"} | unset)))


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
