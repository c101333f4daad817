"""model_meta.json, contract v1.4: the schema and rules 1–7 of the spec, enforced on every read and write.

Rule violations raise :class:`contracts.errors.ContractError` naming the field and the rule; shape and
type errors raise the same error with rule ``"schema"``.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.errors import ContractError
from contracts.families import canonical_family
from contracts.io import read_json
from contracts.paths import VIEWS

CONTRACT_VERSION = "1.4"
INPUT_MODES = ("features", "raw_sequence")
SEQUENCE_NORMALIZATIONS = ("returns", "log_returns", "minmax")
CS_TARGET_TYPES = ("cs_percentile", "cs_zscore", "vol_scaled")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class ContractWarning(UserWarning):
    """A document is usable but uses a deprecated or degraded form (e.g. the legacy ``features`` field)."""


def _violation(field: str, rule: int | str, detail: str) -> ContractError:
    label = f"model_meta rule {rule}" if isinstance(rule, int) else f"model_meta {rule}"
    return ContractError(field, label, detail)


class Metrics(BaseModel):
    """Out-of-sample metrics. ``mean_IC``/``mean_RankIC`` average per-timestamp correlations.

    foxlake writes the **holdout** figures under these names (``evaluated_on: "holdout"``) and the walk-forward CV
    figures, measured on the data that ranked, selected and routed (optimistic), under ``cv_``-prefixed names.
    ``IC_IR`` is null for a single symbol's time series with too few windows to give the ratio a meaning
    (:mod:`ml.metrics`). Numbers must be finite JSON numbers (not strings, not booleans).
    """

    model_config = ConfigDict(extra="allow", strict=True)

    mean_IC: float
    mean_RankIC: float
    IC_IR: float | None

    @model_validator(mode="after")
    def _finite(self) -> Metrics:
        for name in ("mean_IC", "mean_RankIC", "IC_IR"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise _violation(f"metrics.{name}", "metrics", f"must be a finite number, got {value}")
        return self


class RankingTrainingMetrics(BaseModel):
    """Ranking-aligned metrics of a cross-sectional ranking model (strict types: a number is a JSON number).

    foxlake writes the holdout figures of the saved model here (``evaluated_on: "holdout"``; ``ml.training``)."""

    model_config = ConfigDict(extra="allow", strict=True)

    best_ic: float
    best_spread: float
    epochs_trained: int
    ic_ir: float | None = None
    ic_hit_rate: float | None = None
    turnover: float | None = None
    net_spread: float | None = None


class CrossSectionalRanking(BaseModel):
    """The ``cross_sectional_ranking`` block (contract 1.4; strict types)."""

    model_config = ConfigDict(extra="allow", strict=True)

    enabled: bool
    target_type: str | None = None
    loss_type: str | None = None
    sequence_length: int | None = None
    normalization: str | None = None
    training_metrics: RankingTrainingMetrics | None = None


LEGACY_FLAGS = ("legacy_feature_order", "legacy_interval_unknown")


def _check_numbers(value: Any, where: str) -> None:
    """Every number in the document is finite, and no metric is a number written as a string ("NaN", "1e999"):
    a NaN or an infinity sorts above every number and would win a ranking."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _violation(where or "<document>", "numbers", f"must be a finite number, got {value}")
    if isinstance(value, str) and where.startswith("metrics.") and _looks_numeric(value):
        raise _violation(where, "numbers", f"must be a JSON number, not the string {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_numbers(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_numbers(v, f"{where}[{i}]")


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


OHLCV_CHANNELS = ("open", "high", "low", "close", "volume", "vwap")


class ModelMeta(BaseModel):
    """One trained model's metadata, as LIVE_TRADING consumes it.

    Strict types: a number is a JSON number (``true`` is not 1, ``"0.5"`` is not 0.5). The legacy flags are set
    only by reading a legacy document, never from the JSON itself.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, strict=True)

    # required
    family: str
    target: str
    feature_list: list[str]
    n_features: int
    metrics: Metrics
    model_checksum: str | None
    interval_minutes: float | None  # None only in a contract-1.0 document that did not record it
    # optional
    symbol: str | None = None
    route: str | None = None
    view: str | None = None
    params_used: dict[str, Any] | None = None
    feature_importance: dict[str, float] | None = None
    cv_scores: list[float] | None = None
    cv_mean: float | None = None
    cv_std: float | None = None
    package_versions: dict[str, str] | None = None
    n_rows_train: int | None = None
    n_rows_val: int | None = None
    # raw sequence mode (1.3)
    input_mode: Literal["features", "raw_sequence"] = "features"
    sequence_length: int | None = None
    sequence_channels: list[str] | None = None
    sequence_normalization: str | None = None
    # cross-sectional ranking (1.4)
    cross_sectional_ranking: CrossSectionalRanking | None = None
    # deprecated, read only
    features: list[str] | None = Field(default=None, exclude=True)
    # foxlake additions (optional, forward compatible)
    contract_version: str = CONTRACT_VERSION
    model_file: str | None = None
    research_only: bool = False  # the target starts at the close the features see: no order fills there
    fit_scope: Literal["pre_holdout", "all_data"] | None = None  # what the saved model was fitted on
    legacy_feature_order: bool = Field(default=False, exclude=True)
    legacy_interval_unknown: bool = Field(default=False, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _legacy_features(cls, data: Any) -> Any:
        if isinstance(data, dict):
            forged = [k for k in LEGACY_FLAGS if k in data]
            if forged:
                raise _violation(forged[0], "schema", "is set by the reader of a legacy document, not by the JSON")
            _check_numbers({k: v for k, v in data.items() if k != "interval_minutes"}, "")  # rule 3 checks it
        if isinstance(data, dict) and "feature_list" not in data and "features" in data:
            warnings.warn(
                "model_meta uses the deprecated 'features' field; read as feature_list (contract 1.1)",
                ContractWarning,
                stacklevel=2,
            )
            data = dict(data)
            # keep the legacy order: it is the column order the model was trained with
            data["feature_list"] = list(data["features"] or [])
            data["legacy_feature_order"] = data["feature_list"] != sorted(data["feature_list"])
            data.setdefault("n_features", len(data["feature_list"]))
            # contract 1.0 wrote neither field everywhere (fixed in 1.1): an unknown checksum is rule 4's
            # None; an unknown interval is kept as None, and live trading refuses such a model (rule 3)
            data.setdefault("model_checksum", None)
            if "interval_minutes" not in data:
                warnings.warn(
                    "contract-1.0 model_meta without interval_minutes: the training interval is unknown",
                    ContractWarning,
                    stacklevel=2,
                )
                data["interval_minutes"] = None
                data["legacy_interval_unknown"] = True
        if isinstance(data, dict) and data.get("input_mode") is None:
            data = dict(data)
            data["input_mode"] = "features"  # rule 5
        return data

    @model_validator(mode="after")
    def _rules(self) -> ModelMeta:
        try:
            self.family = canonical_family(self.family)
        except KeyError as exc:
            raise _violation("family", "family", str(exc.args[0])) from None
        fl = self.feature_list
        if len(set(fl)) != len(fl):
            dupes = sorted({f for f in fl if fl.count(f) > 1})
            raise _violation("feature_list", 1, f"duplicate feature names {dupes}")
        if fl != sorted(fl) and not getattr(self, "legacy_feature_order", False):
            first = next(i for i in range(len(fl) - 1) if fl[i] > fl[i + 1])
            raise _violation(
                "feature_list",
                1,
                f"must be sorted; {fl[first]!r} comes before {fl[first + 1]!r} at position {first}",
            )
        if self.n_features != len(fl):
            raise _violation("n_features", "n_features", f"is {self.n_features} but feature_list has {len(fl)}")
        if self.model_checksum is not None and not _SHA256_RE.match(self.model_checksum):
            raise _violation("model_checksum", 2, "must be the 64-character lowercase hex SHA256 of the model file")
        if self.interval_minutes is None:
            if not self.legacy_interval_unknown:
                raise _violation("interval_minutes", 3, "is required (null only in a contract-1.0 document)")
        elif not math.isfinite(self.interval_minutes) or self.interval_minutes <= 0:
            raise _violation(
                "interval_minutes", 3, f"must be a positive number of minutes, got {self.interval_minutes}"
            )
        for name in ("view", "route"):
            value = getattr(self, name)
            if value is not None and value not in VIEWS:
                raise _violation(name, "view", f"{value!r} is not one of {VIEWS}")
        if self.view and self.route and self.view != self.route:
            raise _violation("route", "view", f"route {self.route!r} differs from view {self.view!r}")
        scope = self.view or self.route
        if scope == "SYMBOL_SPECIFIC" and not self.symbol:
            raise _violation("symbol", "view", "a SYMBOL_SPECIFIC model must name its symbol")
        if scope == "CROSS_SECTIONAL" and self.symbol:
            raise _violation("symbol", "view", "a CROSS_SECTIONAL model has no symbol")
        if self.input_mode == "raw_sequence":
            if not self.sequence_length or self.sequence_length <= 0:
                raise _violation("sequence_length", 6, "raw_sequence mode needs sequence_length > 0")
            if not self.sequence_channels:
                raise _violation("sequence_channels", 6, "raw_sequence mode must list its OHLCV channels")
            unknown = [c for c in self.sequence_channels if c not in OHLCV_CHANNELS]
            if unknown:
                raise _violation("sequence_channels", 6, f"{unknown} are not OHLCV columns {OHLCV_CHANNELS}")
            if self.sequence_normalization not in SEQUENCE_NORMALIZATIONS:
                raise _violation(
                    "sequence_normalization",
                    6,
                    f"raw_sequence mode needs one of {SEQUENCE_NORMALIZATIONS}, got {self.sequence_normalization!r}",
                )
        elif not fl:
            raise _violation("feature_list", 6, "may be empty only when input_mode = 'raw_sequence'")
        csr = self.cross_sectional_ranking
        if csr is not None and csr.enabled:
            if csr.target_type not in CS_TARGET_TYPES:
                raise _violation(
                    "cross_sectional_ranking.target_type",
                    7,
                    f"must be one of {CS_TARGET_TYPES}, got {csr.target_type!r}",
                )
            if not csr.loss_type:
                raise _violation("cross_sectional_ranking.loss_type", 7, "an enabled ranking model names its loss")
            if csr.training_metrics is None:
                raise _violation("cross_sectional_ranking.training_metrics", 7, "an enabled ranking model reports them")
            if csr.sequence_length is not None and self.input_mode == "raw_sequence":
                if csr.sequence_length != self.sequence_length:
                    raise _violation(
                        "cross_sectional_ranking.sequence_length",
                        7,
                        f"is {csr.sequence_length} but sequence_length is {self.sequence_length}",
                    )
            if csr.normalization is not None and self.input_mode == "raw_sequence":
                if csr.normalization != self.sequence_normalization:
                    raise _violation(
                        "cross_sectional_ranking.normalization",
                        7,
                        f"is {csr.normalization!r} but sequence_normalization is {self.sequence_normalization!r}",
                    )
            if csr.training_metrics.best_ic <= 0:
                warnings.warn(
                    f"cross_sectional_ranking.training_metrics.best_ic = {csr.training_metrics.best_ic} <= 0: "
                    "the ranking model shows no skill (model_meta rule 7)",
                    ContractWarning,
                    stacklevel=2,
                )
        return self

    def to_document(self) -> dict[str, Any]:
        """The JSON document to write (deprecated fields dropped, Nones kept for required keys)."""
        doc = self.model_dump(mode="json", exclude={"features"})
        return {k: v for k, v in doc.items() if v is not None or k in _REQUIRED}


_REQUIRED = {"family", "target", "feature_list", "n_features", "metrics", "model_checksum", "interval_minutes"}


def _schema_error(exc: ValidationError, doc_name: str) -> ContractError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ContractError(field, f"{doc_name} schema", err["msg"] + more)


def parse_model_meta(doc: Any, source: str | Path | None = None) -> ModelMeta:
    """Validate a model_meta document; errors name the file, the field and the rule."""
    try:
        return ModelMeta.model_validate(doc)
    except ValidationError as exc:
        err = _schema_error(exc, "model_meta")
    except ContractError as exc:
        err = exc
    raise err.with_source(str(source)) if source else err


def load_model_meta(path: str | Path) -> ModelMeta:
    """Read and validate ``model_meta.json``."""
    try:
        doc = read_json(path)
    except ValueError as exc:
        raise ContractError("", "json", str(exc), source=str(path)) from None
    return parse_model_meta(doc, source=path)
