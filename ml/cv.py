"""Purged, embargoed walk-forward cross-validation on time (never on rows)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class CVConfig(BaseModel):
    """Walk-forward CV settings.

    Attributes:
        n_folds: validation folds (default 3); the timeline is cut into ``n_folds + 1`` blocks and fold
            ``k`` trains on blocks ``0..k`` (expanding) and validates on block ``k+1``.
        purge_bars: extra bars dropped from the end of each training window, on top of the target's reach
            (the purge is always at least the target's horizon plus delay).
        embargo_bars: bars skipped after a validation window before any later training data (matters for
            non-expanding splits; kept for completeness).
        min_train_timestamps: a fold with fewer training timestamps is skipped.
    """

    model_config = ConfigDict(frozen=True)

    n_folds: int = Field(3, ge=1)
    purge_bars: int = Field(0, ge=0)
    embargo_bars: int = Field(0, ge=0)
    min_train_timestamps: int = Field(100, ge=1)


@dataclass(frozen=True)
class Fold:
    """Timestamps (as sorted numpy datetime64 arrays) of one split."""

    index: int
    train_ts: np.ndarray
    val_ts: np.ndarray


def walk_forward_folds(timestamps: np.ndarray, cfg: CVConfig, reach_bars: int) -> list[Fold]:
    """Split unique sorted timestamps into purged walk-forward folds.

    Training timestamps within ``reach_bars + purge_bars`` bars before the validation window are dropped,
    so no training target window overlaps the validation window.
    """
    ts = np.unique(timestamps)
    blocks = np.array_split(np.arange(len(ts)), cfg.n_folds + 1)
    purge = reach_bars + cfg.purge_bars
    folds = []
    for k in range(cfg.n_folds):
        val_idx = blocks[k + 1]
        if len(val_idx) == 0:
            continue
        train_end = val_idx[0] - purge
        if train_end < cfg.min_train_timestamps:
            continue
        folds.append(Fold(k, ts[:train_end], ts[val_idx]))
    if not folds:
        raise ValueError(
            f"no usable CV fold: {len(ts)} timestamps, {cfg.n_folds} folds, purge {purge} bars, "
            f"min_train_timestamps {cfg.min_train_timestamps}"
        )
    return folds
