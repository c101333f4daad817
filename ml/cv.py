"""The run's holdout and the purged walk-forward CV before it, both on time (never on rows).

The panel's **bar grid** is its sorted distinct timestamps. The **holdout** is the final stretch of the grid
(:class:`HoldoutConfig`); everything before it is the **development** data that target ranking, feature selection,
routing and the choice of symbols read. No decision reads the holdout; the models are fitted on development rows
and scored on the holdout, and those holdout figures are what a model reports and is picked by.

Purging is by each row's **target end**: the timestamp of the last bar its target reads (``ml.targets`` adds it as
``<target>__end_ts``; a halted symbol's next bar may be days later). A row trains a split only if its target ends
strictly before the split's cut, which is ``purge_bars`` grid bars before the first validation (or holdout)
timestamp. So no training target overlaps a validation or holdout window however ragged the panel is.

Walk-forward CV cuts the development grid into ``n_folds + 1`` blocks: fold ``k`` validates on block ``k + 1`` and
trains on every earlier row whose target ended before the cut (expanding). Training never follows its validation
window, so there is no embargo to apply: the setting is refused with that explanation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_HOLDOUT_FRACTION = 0.2


class CVConfig(BaseModel):
    """Walk-forward CV settings (on the development data, before the holdout).

    Attributes:
        n_folds: validation folds (default 3); the development grid is cut into ``n_folds + 1`` blocks and fold
            ``k`` trains on what precedes block ``k + 1`` (expanding) and validates on it.
        purge_bars: grid bars between the cut a training target must end before and the first validation
            timestamp, on top of the target's own reach, which the target-end purge always covers (0).
        min_train_timestamps: a fold with fewer distinct training timestamps is skipped (100).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_folds: int = Field(3, ge=1)
    purge_bars: int = Field(0, ge=0)
    min_train_timestamps: int = Field(100, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _no_embargo(cls, data: Any) -> Any:
        if isinstance(data, dict) and "embargo_bars" in data:
            raise ValueError(
                "embargo_bars was removed: walk-forward training never follows its validation window, so an embargo "
                "would drop nothing; use purge_bars for a gap before each validation window"
            )
        return data


class HoldoutConfig(BaseModel):
    """The holdout: the final stretch of the bar grid that no decision reads. Give at most one of ``fraction``,
    ``n_timestamps`` and ``start``; with none, the final 20 % of the grid.

    Attributes:
        fraction: share of the grid's timestamps held out, at the end (default 0.2 when nothing else is given).
        n_timestamps: the number of final timestamps held out instead.
        start: an ISO date or time (UTC when naive): the holdout starts at the first grid timestamp at or after it.
        purge_bars: grid bars between the cut a development target must end before and the holdout's first
            timestamp, on top of the target-end purge (0).
        refit_on_all_data: after the holdout evaluation, refit the saved model on development and holdout rows
            (False). The holdout metrics then describe the pre-holdout fit; ``model_meta.fit_scope`` says which.
        min_timestamps: a holdout with fewer timestamps is refused (50).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fraction: float | None = Field(None, gt=0, lt=1)
    n_timestamps: int | None = Field(None, ge=1)
    start: str | None = None
    purge_bars: int = Field(0, ge=0)
    refit_on_all_data: bool = False
    min_timestamps: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _one_rule(self) -> HoldoutConfig:
        given = [k for k in ("fraction", "n_timestamps", "start") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of fraction, n_timestamps, start; got {given}")
        if self.start is not None:
            _parse_start(self.start)
        return self

    def describe(self) -> str:
        if self.n_timestamps is not None:
            return f"the final {self.n_timestamps} timestamps"
        if self.start is not None:
            return f"from {self.start}"
        return f"the final {100 * (self.fraction or DEFAULT_HOLDOUT_FRACTION):g} % of timestamps"


def _parse_start(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"holdout.start {text!r} is not an ISO date or time") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def bar_grid(ts: pl.Series | np.ndarray) -> np.ndarray:
    """The sorted distinct timestamps (numpy ``datetime64``) of a panel: its bar grid."""
    values = ts.to_numpy() if isinstance(ts, pl.Series) else np.asarray(ts)
    return np.unique(values)


def _us(t: np.datetime64) -> int:
    """Microseconds since the epoch (UTC), to compare with ``pl.col(...).dt.epoch("us")`` whatever the time zone."""
    return int(np.datetime64(t, "us").astype(np.int64))


def _before(col: str, t: np.datetime64) -> pl.Expr:
    return pl.col(col).dt.epoch("us") < _us(t)


def _at_or_after(col: str, t: np.datetime64) -> pl.Expr:
    return pl.col(col).dt.epoch("us") >= _us(t)


def _datetime64(dt: datetime, like: np.ndarray) -> np.datetime64:
    return np.datetime64(dt.astimezone(UTC).replace(tzinfo=None)).astype(like.dtype)


@dataclass(frozen=True)
class Holdout:
    """Where one run's holdout starts on its bar grid.

    Attributes:
        grid: the panel's sorted distinct timestamps.
        start_index: position of the first holdout timestamp on the grid.
        cut: a development row's target must end strictly before this timestamp (``purge_bars`` grid bars before
            the holdout start).
    """

    grid: np.ndarray
    start_index: int
    cut: np.datetime64

    @property
    def start(self) -> np.datetime64:
        return self.grid[self.start_index]

    @property
    def end(self) -> np.datetime64:
        return self.grid[-1]

    @property
    def n_timestamps(self) -> int:
        return len(self.grid) - self.start_index

    def development(self, rows: pl.DataFrame, end_col: str) -> pl.DataFrame:
        """Rows whose target ends before the cut: what ranking, selection, routing and fitting may read."""
        return rows.filter(_before(end_col, self.cut))

    def holdout(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Rows at or after the holdout start: scored, never fitted on or chosen by."""
        return rows.filter(_at_or_after("ts", self.start))

    def describe(self) -> dict[str, Any]:
        """The manifest's record of the holdout window."""
        return {
            "start": _iso(self.start),
            "end": _iso(self.end),
            "n_timestamps": self.n_timestamps,
            "development_cut": _iso(self.cut),
            "development_start": _iso(self.grid[0]),
            "n_grid_timestamps": len(self.grid),
        }


def _iso(t: np.datetime64) -> str:
    return np.datetime_as_string(t.astype("datetime64[us]"), unit="s") + "Z"


def holdout_from_record(ts: pl.Series | np.ndarray, record: dict[str, Any]) -> Holdout:
    """The holdout a run recorded (:meth:`Holdout.describe`) on the bar grid of ``ts`` (which may have grown)."""
    grid = bar_grid(ts)
    start = np.datetime64(record["start"].rstrip("Z")).astype(grid.dtype)
    cut = np.datetime64(record["development_cut"].rstrip("Z")).astype(grid.dtype)
    index = int(np.searchsorted(grid, start, side="left"))
    if index >= len(grid):
        raise ValueError(f"the recorded holdout starts at {record['start']}, after the data's last timestamp")
    return Holdout(grid, index, cut)


def make_holdout(ts: pl.Series | np.ndarray, cfg: HoldoutConfig) -> Holdout:
    """The holdout of a panel whose timestamps are ``ts``.

    Raises:
        ValueError: the holdout would be empty, shorter than ``min_timestamps``, or leave no development data.
    """
    grid = bar_grid(ts)
    n = len(grid)
    if cfg.start is not None:
        start = int(np.searchsorted(grid, _datetime64(_parse_start(cfg.start), grid), side="left"))
    elif cfg.n_timestamps is not None:
        start = n - cfg.n_timestamps
    else:
        start = n - int(round(n * (cfg.fraction or DEFAULT_HOLDOUT_FRACTION)))
    if start <= 0 or start >= n:
        raise ValueError(f"holdout ({cfg.describe()}) leaves no development data or no holdout in {n} timestamps")
    if n - start < cfg.min_timestamps:
        raise ValueError(
            f"holdout ({cfg.describe()}) has {n - start} timestamps, fewer than holdout.min_timestamps "
            f"{cfg.min_timestamps}"
        )
    return Holdout(grid, start, grid[max(0, start - cfg.purge_bars)])


@dataclass(frozen=True)
class Fold:
    """One walk-forward split of the development data.

    Attributes:
        index: the fold number.
        cut: training rows' targets end strictly before this timestamp.
        val_start, val_end: the validation window (inclusive), whole grid timestamps.
    """

    index: int
    cut: np.datetime64
    val_start: np.datetime64
    val_end: np.datetime64

    def train(self, rows: pl.DataFrame, end_col: str) -> pl.DataFrame:
        return rows.filter(_before(end_col, self.cut))

    def validation(self, rows: pl.DataFrame) -> pl.DataFrame:
        return rows.filter(_at_or_after("ts", self.val_start) & (pl.col("ts").dt.epoch("us") <= _us(self.val_end)))


def walk_forward_folds(timestamps: pl.Series | np.ndarray, cfg: CVConfig, reach_bars: int) -> list[Fold]:
    """Purged walk-forward folds over the development rows' timestamps.

    A fold is skipped when fewer than ``min_train_timestamps`` grid timestamps lie before its cut minus the
    target's reach (the timestamps whose targets can end before the cut on a full grid).
    """
    ts = bar_grid(timestamps)
    blocks = np.array_split(np.arange(len(ts)), cfg.n_folds + 1)
    folds = []
    for k in range(cfg.n_folds):
        val_idx = blocks[k + 1]
        if len(val_idx) == 0:
            continue
        cut_idx = max(0, int(val_idx[0]) - cfg.purge_bars)
        if cut_idx - reach_bars < cfg.min_train_timestamps:
            continue
        folds.append(Fold(k, ts[cut_idx], ts[val_idx[0]], ts[val_idx[-1]]))
    if not folds:
        raise ValueError(
            f"no usable CV fold: {len(ts)} development timestamps, {cfg.n_folds} folds, reach {reach_bars} + purge "
            f"{cfg.purge_bars} bars, min_train_timestamps {cfg.min_train_timestamps}"
        )
    return folds
