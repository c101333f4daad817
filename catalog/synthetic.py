"""Synthetic training runs in the spec's layout, fast: for the catalog benchmark and the catalog tests.

Each run is ``runs/<run_id>/<run_instance_id>/`` with ``manifest.json`` (written last), the global, per-target
and per-view routing files, and per model ``model.<ext>`` (random bytes), ``model_meta.json`` (contract 1.4,
shaped like the pipeline's), ``reproducibility.json`` and ``fingerprints.json``. Targets are routed
CROSS_SECTIONAL, SYMBOL_SPECIFIC or BOTH in turn; SYMBOL_SPECIFIC models sit under ``symbol=<SYM>/``. Every
fifth run is daily (``interval_minutes`` 1440), every seventh has a ``partial`` target (an incomplete run).

Files are written plainly (no fsync): this is test data, not the record of a real run.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from contracts.families import model_filename

FAMILIES = ("LightGBM", "XGBoost", "CatBoost", "Ridge", "ElasticNet", "MLP")
FEATURES = tuple(
    sorted(
        [f"ret_{w}" for w in (1, 5, 20, 60)]
        + [f"rvol_{w}" for w in (5, 20, 60)]
        + [f"volume_z_{w}" for w in (20, 50)]
        + [f"cs_rank_{c}" for c in ("ret_1", "ret_5", "ret_20", "rvol_20", "rsi_14", "volume_z_20", "vwap_dev")]
        + ["rsi_14", "macd_hist", "bb_pctb_20", "atr_14", "vwap_dev", "tod_sin", "tod_cos", "gap_open", "range_frac"]
        + [f"dist_high_{w}" for w in (20, 60)]
        + [f"dist_low_{w}" for w in (20, 60)]
        + ["gk_vol_20", "log_ret_1", "mom_gap_20_5", "wick_imbalance", "dollar_volume_z_20"]
    )
)
PACKAGES = {
    "catboost": "1.2.10", "dagster": "1.13.28", "duckdb": "2.0.1", "foxlake": "0.1.0", "lightgbm": "4.7.0",
    "numpy": "2.4.6", "polars": "2.1.0", "pyarrow": "26.0.1", "pydantic": "2.14.4", "python": "3.11.7",
    "scikit-learn": "1.9.1", "torch": "2.13.0+cpu", "xgboost-cpu": "3.2.0",
}  # fmt: skip
PARTITIONS = [f"2024-{m:02d}-{d:02d}" for m in (1, 2) for d in range(1, 29)]


@dataclass
class SyntheticRuns:
    """What :func:`generate` wrote."""

    n_models: int = 0
    run_dirs: list[str] = field(default_factory=list)  # relative to RESULTS
    model_dirs: list[str] = field(default_factory=list)


def _dump(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n", encoding="utf-8")


def model_meta(
    rng: random.Random, *, target: str, view: str, symbol: str | None, family: str, checksum: str,
    interval_minutes: float, run_id: str, run_instance_id: str, n_features: int = 20,
) -> dict:  # fmt: skip
    """A contract-1.4 model_meta document shaped like the pipeline's."""
    features = sorted(rng.sample(FEATURES, n_features))
    mean_ic = rng.gauss(0.02, 0.015)
    ic_ir = mean_ic / 0.12 + rng.gauss(0, 0.02)
    spread = round(mean_ic * 50.0, 12)
    cv = [round(mean_ic + rng.gauss(0, 0.01), 12) for _ in range(3)]
    return {
        "contract_version": "1.4",
        "cv_mean": sum(cv) / 3,
        "cv_scores": cv,
        "cv_std": 0.01,
        "family": family,
        "feature_importance": {f: round(rng.random() / n_features, 12) for f in features},
        "feature_list": features,
        "horizon_bars": 1,
        "input_mode": "features",
        "interval_minutes": float(interval_minutes),
        "metrics": {  # holdout figures under the contract's names, CV (after selection) under cv_*
            "IC_IR": ic_ir,
            "RankIC_IR": ic_ir * 0.9,
            "hit_rate": 0.5 + mean_ic,
            "mean_IC": mean_ic,
            "mean_RankIC": mean_ic * 0.95,
            "metric_kind": "cross_sectional_per_timestamp" if symbol is None else "time_series_single_symbol",
            "n_timestamps": 2172.0,
            "t_stat": ic_ir * 46.6,
            "ic_coverage": 1.0,
            "spread_bps": spread,
            "turnover_frac": 1.5,
            "net_spread_bps": spread - 0.25 * 2 * 1.5,
            "breakeven_cost_bps": spread / 3.0,
            "cost_bps": 0.25,
            "evaluated_on": "holdout",
            "holdout_start": "2024-02-20T14:35:00Z",
            "holdout_end": "2024-02-28T21:00:00Z",
            "cv_mean_IC": mean_ic + 0.005,
            "cv_IC_IR": ic_ir * 1.1,
            "cv_t_stat": ic_ir * 46.6 * 1.1,
            "cv_net_spread_bps": spread,
        },
        "research_only": False,
        "fit_scope": "pre_holdout",
        "model_checksum": checksum,
        "model_file": model_filename(family),
        "n_features": n_features,
        "n_rows_train": 69504,
        "n_rows_val": 52128,
        "package_versions": PACKAGES,
        "params_used": {"learning_rate": 0.05, "num_boost_round": 150, "num_leaves": 15, "seed": 42},
        "route": view,
        "run_id": run_id,
        "run_instance_id": run_instance_id,
        "symbol": symbol,
        "target": target,
        "view": view,
    }


def write_model(
    run_dir: Path, rng: random.Random, *, target: str, view: str, symbol: str | None, family: str,
    interval_minutes: float, model_bytes: int = 2048,
) -> Path:  # fmt: skip
    """One model directory (model file, model_meta.json, reproducibility.json, fingerprints.json)."""
    d = run_dir / "targets" / target / "models" / f"view={view}"
    if symbol is not None:
        d = d / f"symbol={symbol}"
    d = d / f"family={family}"
    d.mkdir(parents=True, exist_ok=True)
    body = rng.randbytes(model_bytes)
    name = model_filename(family)
    (d / name).write_bytes(body)
    checksum = hashlib.sha256(body).hexdigest()
    meta = model_meta(
        rng, target=target, view=view, symbol=symbol, family=family, checksum=checksum,
        interval_minutes=interval_minutes, run_id=run_dir.parent.name, run_instance_id=run_dir.name,
    )  # fmt: skip
    _dump(d / "fingerprints.json", {"model_sha256": checksum, "n_rows": 69504})
    _dump(
        d / "reproducibility.json",
        {"config_digest": hashlib.sha256(run_dir.parent.name.encode()).hexdigest(), "data_partitions": PARTITIONS,
         "data_range": {"start": "2024-01-01 09:35:00", "end": "2024-02-28 16:00:00"}, "seed": 42},
    )  # fmt: skip
    _dump(d / "model_meta.json", meta)  # last, as the trainer does
    return d


def _route(i: int) -> str:
    return ("CROSS_SECTIONAL", "BOTH", "SYMBOL_SPECIFIC")[i % 3]


def generate(
    results: str | Path,
    n_models: int,
    *,
    families: tuple[str, ...] = FAMILIES,
    n_symbols: int = 8,
    targets_per_run: int = 20,
    seed: int = 0,
    model_bytes: int = 2048,
    first_run: int = 0,
    run_id: str | None = None,
) -> SyntheticRuns:
    """Write runs holding exactly ``n_models`` model directories under ``results/runs``."""
    results = Path(results)
    rng = random.Random(seed)
    out = SyntheticRuns()
    r = first_run
    while out.n_models < n_models:
        rid = run_id or f"synth{r % 4}"
        inst = f"2026{1 + r // 28 % 12:02d}{1 + r % 28:02d}T{r // 336 % 24:02d}0000Z_{r:08x}"
        run_dir = results / "runs" / rid / inst
        interval = 1440.0 if r % 5 == 4 else 5.0
        index, routing = {}, {}
        for t in range(targets_per_run):
            if out.n_models >= n_models:
                break
            target = f"fwd_ret_{5 * (1 + t % 6)}m_v{t}"
            route = _route(t + r)
            views = {"CROSS_SECTIONAL": ["CROSS_SECTIONAL"], "SYMBOL_SPECIFIC": ["SYMBOL_SPECIFIC"],
                     "BOTH": ["CROSS_SECTIONAL", "SYMBOL_SPECIFIC"]}[route]  # fmt: skip
            trained, n_target = set(), 0
            for view in views:
                symbols = [None] if view == "CROSS_SECTIONAL" else [f"SYM{s:03d}" for s in range(n_symbols)]
                for sym in symbols:
                    for fam in families:
                        if out.n_models >= n_models:
                            break
                        d = write_model(run_dir, rng, target=target, view=view, symbol=sym, family=fam,
                                        interval_minutes=interval, model_bytes=model_bytes)  # fmt: skip
                        out.model_dirs.append(d.relative_to(results).as_posix())
                        out.n_models += 1
                        n_target += 1
                        trained.add(fam)
            decision = {
                "route": route,
                "reason": f"synthetic rule {route}: skill01_cs={0.5 + t / 100:.3f}",
                "skill01_cs": 0.5 + t / 100,
                "skill01_sym_mean": 0.5,
                "frac_symbols_good": 0.5,
                "winner_symbols": ["SYM000"],
                "n_symbols_evaluated": n_symbols,
            }
            routing[target] = decision
            _dump(run_dir / "targets" / target / "decision" / "routing_decision.json", {target: decision})
            for view in views:
                _dump(run_dir / "targets" / target / "models" / f"view={view}" / "routing_decision.json",
                      {target: decision})  # fmt: skip
            partial = r % 7 == 6 and t == 0
            index[target] = {
                "status": "partial" if partial else "complete",
                "families_trained": sorted(trained),
                "view": views[0],
                "views": views,
                "route": route,
                "n_models": n_target,
            }
        _dump(run_dir / "globals" / "routing_decisions.json", routing)
        manifest = {
            "run_id": rid,
            "run_instance_id": inst,
            "timestamp": f"2026-{1 + r // 28 % 12:02d}-{1 + r % 28:02d}T{r // 336 % 24:02d}:00:00+00:00",
            "git_sha": f"{r:040x}",
            "target_index": index,
            "config_digest": hashlib.sha256(rid.encode()).hexdigest(),
            "is_comparable": True,
            "run_metadata": {
                "dagster_run_id": f"{r:08x}-0000-4000-8000-{r:012x}",
                "interval_minutes": interval,
                "reused_from": None,
            },  # fmt: skip
            "contract_version": "1.4",
        }
        _dump(run_dir / "manifest.json", manifest)
        out.run_dirs.append(run_dir.relative_to(results).as_posix())
        r += 1
    return out
