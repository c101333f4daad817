"""Train one model (family × target × view [× symbol]) and write its artifacts atomically.

A model directory holds ``model.<ext>``, ``model_meta.json`` (contract v1.4, written after the model
file so its checksum is final), ``fingerprints.json`` and ``reproducibility.json``. The model file is the
whole model (the linear families' imputer and scaler are inside their pipeline), so its one checksum covers
everything that is loaded.
"""

from __future__ import annotations

import platform
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from contracts.io import canonical_json, sha256_file, sha256_text, write_atomic_bytes, write_atomic_json
from contracts.model_meta import ModelMeta, parse_model_meta
from contracts.paths import FINGERPRINTS, MODEL_META, REPRODUCIBILITY, get_model_path
from ml.cv import CVConfig, Holdout, walk_forward_folds
from ml.families import get_family
from ml.inputs import ModelInputs, inputs_for, timestamp_groups
from ml.metrics import EvaluationConfig, cross_sectional_metrics
from ml.ranking import fold_scores, oos_predictions, score_rows, symbol_metrics
from ml.targets import target_end_column

PACKAGES = (
    "foxlake",
    "numpy",
    "polars",
    "pyarrow",
    "duckdb",
    "lightgbm",
    "xgboost-cpu",
    "catboost",
    "scikit-learn",
    "torch",
    "dagster",
    "pydantic",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a model depends on (``python`` included)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass(frozen=True)
class ModelJob:
    """One model to train.

    Attributes:
        target: target column name.
        view: ``CROSS_SECTIONAL`` or ``SYMBOL_SPECIFIC``.
        family: canonical family name.
        symbol: the symbol of a SYMBOL_SPECIFIC model.
        horizon_bars, reach_bars: the target's horizon and how far past ``t`` it reads.
        features: the selected feature list (sorted).
        ret: the forward-return column the cost metrics use (the target itself for a ``fwd_ret`` target).
        research_only: the target starts at the close the features see, which no order can fill at.
        target_kind: ``fwd_ret`` or the cross-sectional variant the target is (``ml.targets``): a ranking model's
            ``cross_sectional_ranking.target_type``.
    """

    target: str
    view: str
    family: str
    symbol: str | None
    horizon_bars: int
    reach_bars: int
    features: tuple[str, ...] = ()
    ret: str | None = None
    research_only: bool = False
    target_kind: str = "fwd_ret"


def _view_metrics(
    predictions: pl.DataFrame, job: ModelJob, evaluation: EvaluationConfig, grid: np.ndarray
) -> dict[str, Any]:
    """The model_meta metric names of one view's predictions (``ts, symbol, y, ret, score``)."""
    if job.view == "CROSS_SECTIONAL":
        m = cross_sectional_metrics(predictions, horizon_bars=job.horizon_bars, cfg=evaluation, ret="ret")
        return {**m, "metric_kind": "cross_sectional_per_timestamp"}
    ts = symbol_metrics(predictions, job.horizon_bars, evaluation, grid)
    return {
        "mean_IC": ts["ts_IC"],
        "mean_RankIC": ts["ts_RankIC"],
        **{k: v for k, v in ts.items() if k not in ("ts_IC", "ts_RankIC")},
        "metric_kind": "time_series_single_symbol",
    }


def train_and_write(
    panel: pl.DataFrame,
    features: list[str],
    job: ModelJob,
    model_dir: Path,
    *,
    interval_minutes: float,
    params: dict[str, Any],
    cv: CVConfig,
    holdout: Holdout,
    evaluation: EvaluationConfig,
    seed: int,
    provenance: dict[str, Any],
    refit_on_all_data: bool = False,
) -> ModelMeta:
    """Score ``job`` by walk-forward CV on the development rows (after selection: optimistic), fit it on them,
    score that fit on the holdout, optionally refit on everything, and write its model directory.

    ``model_meta.metrics`` holds the holdout figures under the contract's names (``mean_IC``, ``IC_IR``, …) and the
    CV figures under ``cv_``-prefixed names.
    """
    fam = get_family(job.family)
    p = fam.params(params)
    features = sorted(features) if fam.input_mode == "features" else []
    ranking = fam.ranking_loss(p)
    ret = job.ret or job.target
    inputs = inputs_for(job.family, p, panel, features)
    rows = inputs.rows(panel, job.target)
    if job.symbol is not None:
        rows = rows.filter(pl.col("symbol") == job.symbol)
    development = holdout.development(rows, target_end_column(job.target))
    held_out = holdout.holdout(rows)
    if development.height < 100:
        raise ValueError(f"{job}: only {development.height} usable development rows")
    if held_out.is_empty():
        raise ValueError(f"{job}: no usable row in the holdout from {holdout.describe()['start']}")
    grid = holdout.grid
    folds = walk_forward_folds(development["ts"], cv, job.reach_bars)
    oos = oos_predictions(development, features, job.target, job.family, p, folds, seed, ret, inputs).predictions
    cv_metrics = _view_metrics(oos, job, evaluation, grid)
    cv_scores = fold_scores(oos, job.horizon_bars, cross_sectional=job.view == "CROSS_SECTIONAL")

    model = _fit(fam, inputs, development, job.target, features, p, seed)
    metrics = _view_metrics(score_rows(fam, model, held_out, features, job.target, ret, inputs), job, evaluation, grid)
    window = holdout.describe()
    metrics.update(
        evaluated_on="holdout",
        holdout_start=window["start"],
        holdout_end=window["end"],
        **{f"cv_{k}": v for k, v in cv_metrics.items() if k != "metric_kind"},
        cv_note="walk-forward CV on the development data that ranked, selected and routed: optimistic",
    )
    fitted = development
    if refit_on_all_data:
        fitted = rows
        model = _fit(fam, inputs, rows, job.target, features, p, seed)

    model_dir.mkdir(parents=True, exist_ok=True)
    model_path = get_model_path(model_dir, job.family)
    with tempfile.TemporaryDirectory(dir=model_dir) as tmp:
        staged = Path(tmp) / model_path.name
        fam.save(model, staged)
        write_atomic_bytes(model_path, staged.read_bytes())
    checksum = sha256_file(model_path)

    doc = {
        "family": job.family,
        "target": job.target,
        "feature_list": features,
        "n_features": len(features),
        "metrics": metrics,
        "model_checksum": checksum,
        "interval_minutes": float(interval_minutes),
        "symbol": job.symbol,
        "route": job.view,
        "view": job.view,
        "params_used": {**p, "seed": seed},
        "feature_importance": fam.importance(model, features),
        "cv_scores": cv_scores,
        "cv_mean": float(np.mean(cv_scores)) if cv_scores else 0.0,
        "cv_std": float(np.std(cv_scores, ddof=1)) if len(cv_scores) > 1 else 0.0,
        "package_versions": package_versions(),
        "n_rows_train": int(fitted.height),
        "n_rows_val": int(held_out.height),
        **_input_fields(fam, model, ranking, job, metrics, p),
        "model_file": model_path.name,
        "horizon_bars": job.horizon_bars,
        "research_only": job.research_only,
        "fit_scope": "all_data" if refit_on_all_data else "pre_holdout",
        "run_id": provenance.get("run_id"),
        "run_instance_id": provenance.get("run_instance_id"),
    }
    meta = parse_model_meta(doc, source=str(model_dir / MODEL_META))
    write_atomic_json(
        model_dir / FINGERPRINTS,
        {
            "model_sha256": checksum,
            "feature_list_sha256": sha256_text(canonical_json(features)),
            "training_data_sha256": _frame_digest(fitted.select("ts", "symbol", *inputs.columns, job.target)),
            "n_rows": int(fitted.height),
        },
    )
    write_atomic_json(
        model_dir / REPRODUCIBILITY,
        {
            "seed": seed,
            "config_digest": provenance.get("config_digest"),
            "data_partitions": provenance.get("data_partitions", []),
            # everything the run saw (development and holdout): live trading starts after data_range.end + horizon
            "data_range": {
                "start": _iso(rows["ts"].min()),
                "end": provenance.get("data_end") or _iso(rows["ts"].max()),
            },
            "train_range": {"start": _iso(fitted["ts"].min()), "end": _iso(fitted["ts"].max())},
            "holdout": window,
            "package_versions": doc["package_versions"],
            "params_used": doc["params_used"],
            "cv": cv.model_dump(),
        },
    )
    write_atomic_json(model_dir / MODEL_META, meta.to_document())
    return meta


def _fit(fam, inputs: ModelInputs, rows: pl.DataFrame, target: str, features: list[str], p: dict, seed: int) -> Any:
    return fam.fit(inputs.matrix(rows), rows[target].to_numpy(), features, p, seed, groups=timestamp_groups(rows))


def _input_fields(fam, model: Any, ranking: str | None, job: ModelJob, metrics: dict, p: dict) -> dict[str, Any]:
    """The meta's contract-1.3 fields (what the model reads) and its 1.4 ``cross_sectional_ranking`` block.

    The block's ``training_metrics`` are the **holdout** figures of the saved model (``evaluated_on``): ``best_ic``
    is its holdout mean RankIC (no epoch or round is chosen on the holdout, so nothing better is searched for),
    ``best_spread`` and ``net_spread`` the top-bottom quantile spread before and after costs in bps per holding
    period, ``ic_ir`` and ``ic_hit_rate`` the per-timestamp IC's mean over its standard deviation and share of
    positive timestamps, ``turnover`` the quantile portfolio's one-way turnover per rebalance (fraction),
    ``epochs_trained`` the epochs (a network) or boosting rounds (trees) of the fit.
    """
    out: dict[str, Any] = {"input_mode": fam.input_mode}
    spec = fam.sequence_spec(model)
    if spec is not None:
        out |= {
            "sequence_length": spec.length,
            "sequence_channels": list(spec.channels),
            "sequence_normalization": spec.normalization,
        }
    if ranking is not None:
        out["cross_sectional_ranking"] = {
            "enabled": True,
            "target_type": job.target_kind,
            "loss_type": ranking,
            "sequence_length": spec.length if spec is not None else None,
            "normalization": spec.normalization if spec is not None else None,
            "training_metrics": {
                "best_ic": metrics["mean_RankIC"],
                "best_spread": metrics.get("spread_bps"),
                "epochs_trained": int(p.get("epochs", p.get("num_boost_round", 0))),
                "ic_ir": metrics.get("IC_IR"),
                "ic_hit_rate": metrics.get("hit_rate"),
                "turnover": metrics.get("turnover_frac"),
                "net_spread": metrics.get("net_spread_bps"),
                "evaluated_on": "holdout",
            },
        }
    return out


def _iso(ts: datetime) -> str:
    """A bar timestamp as ISO-8601 UTC with ``Z`` (the form the holdout record uses)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _frame_digest(df: pl.DataFrame) -> str:
    """A content digest of a frame (row hash, order-sensitive)."""
    hashes = df.hash_rows(seed=0).to_numpy()
    return sha256_text(hashes.tobytes().hex())
