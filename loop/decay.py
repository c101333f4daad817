"""Decay detection: is a traded model's realised IC significantly below the holdout IC it was picked on?

Read from the live ledger (read-only), per model trading now (``models``), its realised IC rows
(``realised_ic``: the cross-sectional IC of the cycle's scores with the target's realised return), only of cycles it
predicted itself (from its last ``model_swaps`` row on). Overlapping horizons are not independent, so one row in
``horizon_bars`` is kept (cycles ``first, first + h, …``): the last ``window_horizons`` of those are the sample.

**The test** (one-sided t-test): ``H0: E[realised IC] >= holdout IC``. With the sample's mean ``m``, standard
deviation ``s`` (ddof 1) and size ``K``, ``t = (m - holdout_ic) / (s / sqrt(K))`` and ``p = P(T_{K-1} <= t)``.
A model has decayed when ``K = window_horizons`` and ``p < p_value`` (default 0.01) and ``m`` is below the holdout
IC by at least ``min_drop_ic``. A target has decayed when every model of it trading now has.

Detection delay (measured, ``tests/test_decay.py``'s setup over 20 seeds: 24 symbols, per-bar IC noise 0.2, holdout
IC 0.05 flipping to -0.05, K = 30): found after a median of 24 realised horizons past the flip, 3 at the fastest,
50 at the slowest; the window must first fill with post-flip horizons, so expect about K of them. In the closed
loop's story (``configs/loop.yaml``: 100 symbols, K = 20, truth IC 0.09 flipping to -0.09) the test is significant
10 realised horizons after the flip (:func:`first_detection` replayed on the ledger); the sensor that runs it
(``assets.loop_sensors.retrain_on_decay``, every 15 s) fires later by the bars the engine traded since its last tick.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from live.ledger.reader import LedgerReader
from live.ledger.schema import OWN_CYCLES_FROM
from loop.config import DecayConfig
from ml.targets import TargetSpec


@dataclass(frozen=True)
class ModelDecay:
    """The test of one model."""

    model: str
    model_dir: str
    target: str
    holdout_ic: float
    since_cycle: int
    n_horizons: int
    realised_mean_ic: float | None
    t_stat: float | None
    p_value: float | None
    first_cycle: int | None
    last_cycle: int | None
    decayed: bool


@dataclass(frozen=True)
class TargetDecay:
    """Every model of one target, and whether the target has decayed (all its models have)."""

    target: str
    decayed: bool
    last_cycle: int
    models: list[ModelDecay]

    def evidence(self) -> dict:
        return {"target": self.target, "last_cycle": self.last_cycle, "models": [asdict(m) for m in self.models]}


def one_sided_t(sample: list[float], mu0: float) -> tuple[float, float]:
    """(t, p) of ``H0: mean >= mu0`` against ``mean < mu0``."""
    k = len(sample)
    mean = sum(sample) / k
    sd = math.sqrt(sum((x - mean) ** 2 for x in sample) / (k - 1))
    if sd == 0:
        return (-math.inf, 0.0) if mean < mu0 else (math.inf, 1.0)
    from scipy.special import stdtr  # the t distribution's CDF (scipy.stats costs ~0.8 s to import)

    t = (mean - mu0) / (sd / math.sqrt(k))
    return t, float(stdtr(k - 1, t))


def model_decay(reader: LedgerReader, model: dict, cfg: DecayConfig, interval_minutes: float) -> ModelDecay:
    """The decay test of one row of the ledger's ``models`` table (with ``since``: its own first cycle)."""
    since = int(model["since"])
    h = TargetSpec.from_name(model["target"], interval_minutes).horizon_bars
    rows = reader.con.execute(
        "select cycle_id, ic from realised_ic where model = ? and cycle_id >= ? and ic is not null order by cycle_id",
        (model["model"], since),
    ).fetchall()
    result = sample_test(rows, float(model["holdout_ic"]), cfg, h)
    return ModelDecay(model["model"], model["model_dir"], model["target"], float(model["holdout_ic"]), since, *result)


def sample_test(
    rows: list[tuple[int, float]], holdout_ic: float, cfg: DecayConfig, horizon_bars: int
) -> tuple[int, float | None, float | None, float | None, int | None, int | None, bool]:
    """The test on ``(predicting cycle, realised IC)`` rows in cycle order: ``(K, mean, t, p, first cycle,
    last cycle, decayed)`` of the last ``window_horizons`` non-overlapping ones."""
    if rows:
        first = rows[0][0]
        rows = [r for r in rows if (r[0] - first) % horizon_bars == 0]
    sample = rows[-cfg.window_horizons :]
    if len(sample) < cfg.window_horizons:
        return len(sample), None, None, None, None, None, False
    ics = [float(r[1]) for r in sample]
    t, p = one_sided_t(ics, holdout_ic)
    mean = sum(ics) / len(ics)
    decayed = p < cfg.p_value and mean <= holdout_ic - cfg.min_drop_ic
    return len(sample), mean, t, p, sample[0][0], sample[-1][0], decayed


def first_detection(
    rows: list[tuple[int, float]], holdout_ic: float, cfg: DecayConfig, horizon_bars: int
) -> int | None:
    """The first predicting cycle at which the test on the rows up to it fires (the test replayed over a ledger's
    history, as if it ran after every cycle), or None."""
    for i in range(cfg.window_horizons, len(rows) + 1):
        if sample_test(rows[:i], holdout_ic, cfg, horizon_bars)[-1]:
            return rows[i - 1][0]
    return None


def ledger_decay(results: str | Path, account: str, cfg: DecayConfig | None = None) -> list[TargetDecay]:
    """The decay test of every target the account trades now (by target name)."""
    cfg = cfg or DecayConfig()
    with LedgerReader(results, account) as reader:
        interval = float(reader.meta().get("interval_minutes") or _interval(reader))
        models = reader.frame(
            f"select m.model, m.target, m.model_dir, m.holdout_ic, {OWN_CYCLES_FROM} as since from models m "
            "order by m.model"
        ).to_dicts()
        last = reader.one("select coalesce(max(cycle_id), 0) as c from cycles")["c"]
        tests = [model_decay(reader, m, cfg, interval) for m in models if m["holdout_ic"] is not None]
    out = []
    for target in sorted({m.target for m in tests}):
        mine = [m for m in tests if m.target == target]
        out.append(TargetDecay(target, all(m.decayed for m in mine), int(last), mine))
    return out


def _interval(reader: LedgerReader) -> float:
    """The bar interval of the ledger's cycles (minutes): the most common gap between consecutive cycles."""
    rows = [r[0] for r in reader.con.execute("select ts from cycles order by cycle_id desc limit 50").fetchall()]
    stamps = sorted(datetime.fromisoformat(r) for r in rows)
    gaps = [(b - a).total_seconds() / 60 for a, b in zip(stamps, stamps[1:], strict=False)]
    if not gaps:
        raise ValueError(f"{reader.path}: fewer than two cycles; the bar interval is unknown")
    return max(set(gaps), key=gaps.count)
