"""Blocking asset checks: a bad result stops the assets downstream of it."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from assets.resources import LakeResource
from contracts.io import read_json, sha256_file
from contracts.model_meta import load_model_meta
from contracts.paths import MODEL_META, REPRODUCIBILITY
from ml import run as steps
from ml.bars import BarSchemaError, validate_bars
from ml.features import build_features, max_lookback_bars
from ml.lake import partitions, read_table, table_dir


@dg.asset_check(asset="bars", blocking=True, description="Bars follow the schema: types, positive prices, OHLC order")
def bars_schema(lake: LakeResource) -> dg.AssetCheckResult:
    cfg = lake.run_config()
    directory = table_dir(lake.results(), "bars", cfg.bar_interval_minutes)
    df = read_table(directory)
    try:
        validate_bars(df, source=str(directory))
    except BarSchemaError as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc))
    dupes = df.height - df.unique(["symbol", "ts"]).height
    return dg.AssetCheckResult(passed=dupes == 0, metadata={"rows": df.height, "duplicate_keys": dupes})


@dg.asset_check(
    asset="features",
    blocking=True,
    description="No look-ahead: features recomputed from bars that end at a day's close equal the stored ones",
)
def features_no_lookahead(lake: LakeResource) -> dg.AssetCheckResult:
    cfg = lake.run_config()
    interval = cfg.bar_interval_minutes
    feat_dir = table_dir(lake.results(), "features", interval)
    dates = partitions(feat_dir)
    probe = sorted({dates[len(dates) // 2], dates[-2] if len(dates) > 1 else dates[0]})
    bars = read_table(table_dir(lake.results(), "bars", interval))
    worst, names = 0.0, []
    for d in probe:
        stored = pl.read_parquet(feat_dir / f"date={d}" / "part-0.parquet").sort("symbol", "ts")
        names = [c for c in stored.columns if c not in ("ts", "symbol", "close")]
        end = stored["ts"].max()
        lookback = max_lookback_bars(names)
        stamps = bars.filter(pl.col("ts") <= end)["ts"].unique().sort()
        start = stamps[max(0, len(stamps) - stored["ts"].n_unique() - lookback - 1)]
        truncated = bars.filter(pl.col("ts").is_between(start, end))  # nothing after the day's close
        fresh = build_features(truncated, names).filter(pl.col("ts") >= stored["ts"].min()).sort("symbol", "ts")
        a, b = stored.select(names).to_numpy(), fresh.select(names).to_numpy()
        both = np.isfinite(a) & np.isfinite(b)
        mismatch_nulls = int((np.isfinite(a) != np.isfinite(b)).sum())
        diff = float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0
        worst = max(worst, diff, float(mismatch_nulls))
    return dg.AssetCheckResult(
        passed=worst <= 1e-9, metadata={"dates_probed": ", ".join(probe), "max_abs_diff": worst, "features": len(names)}
    )


@dg.asset_check(
    asset="target_ranking",
    blocking=True,
    description="Targets are finite where present; only each symbol's last bars lack a target",
)
def targets_finite(lake: LakeResource) -> dg.AssetCheckResult:
    cfg = lake.run_config()
    panel, _, _ = steps.load_panel(lake.results(), cfg)
    bad, tail_only = {}, True
    for spec in cfg.targets:
        name = spec.name(cfg.bar_interval_minutes)
        col = panel[name]
        bad[name] = int(col.is_nan().sum() + col.is_infinite().sum())
        nulls = panel.with_columns(pl.int_range(pl.len()).reverse().over("symbol").alias("_from_end")).filter(
            pl.col(name).is_null()
        )
        tail_only &= bool((nulls["_from_end"] < spec.reach_bars + 20).all())
    return dg.AssetCheckResult(
        passed=not any(bad.values()) and tail_only, metadata={"nan_or_inf": str(bad), "nulls_only_at_tail": tail_only}
    )


def _run_metas(manifest: dict) -> list[Path]:
    return sorted(Path(manifest["run_dir"]).glob(f"targets/*/models/**/{MODEL_META}"))


@dg.asset_check(
    asset="manifest",
    blocking=True,
    description="Every model's feature_list is sorted and equals the columns selected for its target/view (empty for a "
    "raw-sequence model)",
)
def feature_lists_match_training(manifest: dict) -> dg.AssetCheckResult:
    selection = steps.read_selection(Path(manifest["run_dir"]))
    problems = []
    for path in _run_metas(manifest):
        meta = load_model_meta(path)
        if meta.feature_list != sorted(meta.feature_list):
            problems.append(f"{path}: feature_list not sorted")
        if meta.input_mode == "raw_sequence":  # raw OHLCV windows: no feature columns (contract rule 6)
            if meta.feature_list:
                problems.append(f"{path}: a raw-sequence model lists features")
        elif meta.feature_list != sorted(selection[meta.target][meta.view]):
            problems.append(f"{path}: feature_list differs from the selected training columns")
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"models": len(_run_metas(manifest)), "problems": "\n".join(problems[:20]) or "none"},
    )


@dg.asset_check(asset="manifest", blocking=True, description="Every model file's sha256 equals its model_checksum")
def checksums_match(manifest: dict) -> dg.AssetCheckResult:
    bad = []
    for path in _run_metas(manifest):
        meta = load_model_meta(path)
        if meta.model_checksum != sha256_file(path.parent / meta.model_file):
            bad.append(str(path.parent))
    return dg.AssetCheckResult(passed=not bad, metadata={"mismatches": "\n".join(bad) or "none"})


@dg.asset_check(
    asset="manifest",
    blocking=True,
    description="Every model was fitted before the run's holdout and reports its metrics on it",
)
def models_scored_on_the_holdout(manifest: dict) -> dg.AssetCheckResult:
    run_dir = Path(manifest["run_dir"])
    window = read_json(run_dir / "globals" / steps.HOLDOUT_JSON)
    problems = []
    for path in _run_metas(manifest):
        meta = load_model_meta(path)
        extra = meta.metrics.model_extra or {}
        if extra.get("evaluated_on") != "holdout" or extra.get("holdout_start") != window["start"]:
            problems.append(f"{path}: metrics are not the run's holdout figures ({extra.get('evaluated_on')})")
        fitted_until = read_json(path.parent / REPRODUCIBILITY)["train_range"]["end"]
        if meta.fit_scope == "pre_holdout" and fitted_until >= window["start"]:
            problems.append(f"{path}: fitted on bars up to {fitted_until}, inside the holdout from {window['start']}")
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"holdout": f"{window['start']} .. {window['end']}", "problems": "\n".join(problems[:20]) or "none"},
    )


ALL_CHECKS = [
    bars_schema,
    features_no_lookahead,
    targets_finite,
    feature_lists_match_training,
    checksums_match,
    models_scored_on_the_holdout,
]
