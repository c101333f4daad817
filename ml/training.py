"""Train one model (family × target × view [× symbol]) and write its artifacts atomically.

A model directory holds ``model.<ext>``, ``model_meta.json`` (contract v1.4, written after the model
file so its checksum is final), ``fingerprints.json`` and ``reproducibility.json``.
"""

from __future__ import annotations

import platform
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import polars as pl

from contracts.io import canonical_json, sha256_file, sha256_text, write_atomic_bytes, write_atomic_json
from contracts.model_meta import ModelMeta, parse_model_meta
from contracts.paths import FINGERPRINTS, MODEL_META, REPRODUCIBILITY, get_model_path
from ml.cv import CVConfig, walk_forward_folds
from ml.families import get_family
from ml.metrics import cross_sectional_metrics, time_series_metrics
from ml.ranking import fold_scores, oos_predictions, training_rows

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
        horizon_bars, reach_bars: the target's horizon and how far past ``t`` it reads (for purging).
        features: the selected feature list (sorted).
    """

    target: str
    view: str
    family: str
    symbol: str | None
    horizon_bars: int
    reach_bars: int
    features: tuple[str, ...] = ()


def train_and_write(
    panel: pl.DataFrame,
    features: list[str],
    job: ModelJob,
    model_dir: Path,
    *,
    interval_minutes: float,
    params: dict[str, Any],
    cv: CVConfig,
    seed: int,
    provenance: dict[str, Any],
) -> ModelMeta:
    """Evaluate ``job`` out of sample, fit it on every usable row, and write its model directory."""
    features = sorted(features)
    fam = get_family(job.family)
    p = fam.params(params)
    rows = training_rows(panel, features, job.target)
    if job.symbol is not None:
        rows = rows.filter(pl.col("symbol") == job.symbol)
    if rows.height < 100:
        raise ValueError(f"{job}: only {rows.height} usable rows")
    folds = walk_forward_folds(rows["ts"].to_numpy(), cv, job.reach_bars)
    oos = oos_predictions(rows, features, job.target, job.family, p, folds, seed).predictions
    cross = job.view == "CROSS_SECTIONAL"
    if cross:
        m = cross_sectional_metrics(oos, horizon_bars=job.horizon_bars)
        metrics = {**m, "metric_kind": "cross_sectional_per_timestamp"}
    else:
        ts = time_series_metrics(oos["score"].to_numpy(), oos["y"].to_numpy(), job.horizon_bars)
        metrics = {
            "mean_IC": ts["ts_IC"],
            "mean_RankIC": ts["ts_RankIC"],
            "IC_IR": 0.0,
            "t_stat": ts["t_stat"],
            "n_obs": ts["n_obs"],
            "metric_kind": "time_series_single_symbol",
        }
        sym_scores = fold_scores(oos, job.horizon_bars, cross_sectional=False)
        if len(sym_scores) > 1 and np.std(sym_scores, ddof=1) > 0:
            metrics["IC_IR"] = float(np.mean(sym_scores) / np.std(sym_scores, ddof=1))
    cv_scores = fold_scores(oos, job.horizon_bars, cross_sectional=cross)

    X = rows.select(features).to_numpy()
    model = fam.fit(X, rows[job.target].to_numpy(), features, p, seed)
    model_dir.mkdir(parents=True, exist_ok=True)
    model_path = get_model_path(model_dir, job.family)
    with tempfile.TemporaryDirectory(dir=model_dir) as tmp:
        staged = Path(tmp) / model_path.name
        fam.save(model, staged)
        write_atomic_bytes(model_path, staged.read_bytes())
        for name, obj in getattr(fam, "extra_artifacts", lambda _m: {})(model).items():
            extra = Path(tmp) / name
            joblib.dump(obj, extra)
            write_atomic_bytes(model_dir / name, extra.read_bytes())
    checksum = sha256_file(model_path)

    n_val = int(oos.height)
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
        "n_rows_train": int(rows.height),
        "n_rows_val": n_val,
        "input_mode": "features",
        "model_file": model_path.name,
        "horizon_bars": job.horizon_bars,
        "run_id": provenance.get("run_id"),
        "run_instance_id": provenance.get("run_instance_id"),
    }
    meta = parse_model_meta(doc, source=str(model_dir / MODEL_META))
    write_atomic_json(
        model_dir / FINGERPRINTS,
        {
            "model_sha256": checksum,
            "feature_list_sha256": sha256_text(canonical_json(features)),
            "training_data_sha256": _frame_digest(rows.select("ts", "symbol", *features, job.target)),
            "n_rows": int(rows.height),
        },
    )
    write_atomic_json(
        model_dir / REPRODUCIBILITY,
        {
            "seed": seed,
            "config_digest": provenance.get("config_digest"),
            "data_partitions": provenance.get("data_partitions", []),
            "data_range": {"start": str(rows["ts"].min()), "end": str(rows["ts"].max())},
            "package_versions": doc["package_versions"],
            "params_used": doc["params_used"],
            "cv": cv.model_dump(),
        },
    )
    write_atomic_json(model_dir / MODEL_META, meta.to_document())
    return meta


def _frame_digest(df: pl.DataFrame) -> str:
    """A content digest of a frame (row hash, order-sensitive)."""
    hashes = df.hash_rows(seed=0).to_numpy()
    return sha256_text(hashes.tobytes().hex())
