"""Raw OHLCV sequences (contract 1.3): the windows a raw-sequence model reads and their one normalisation.

A **window** at ``(t, symbol)`` is the symbol's last ``sequence_length`` bars up to and including bar ``t`` (the
bar whose close the decision is taken at), oldest first, one column per channel of ``sequence_channels`` in that
order. Training cuts one per row from the symbol's own bars sorted by time (:func:`raw_windows`); live trading from
its per-symbol bar window (``live.bar_window``). Both hand float64 ``[n, length, channels]`` arrays to
:func:`normalize_windows`, so the same bars give the same numbers bit for bit (the parity test checks equality).

**Normalisations** (``sequence_normalization``). The anchor of a window is the close of its last bar, known at
``t``'s close, the same in training and live:

* ``returns``: a price channel ``p`` becomes ``p / anchor - 1`` (a fraction);
* ``log_returns``: ``log(p / anchor)``;
* ``minmax``: ``(p - lo) / (hi - lo)`` with ``lo``/``hi`` the lowest and highest value of the window's price
  channels (0.5 everywhere when they are equal).

Price channels are ``open``, ``high``, ``low``, ``close``, ``vwap``. **Volume** keeps relative volume (a symbol's
volume against its own recent volume, where the synthetic market plants a signal): ``log((1 + v) / (1 + mean v))``
over the window for ``returns`` and ``log_returns``, ``v / max v`` for ``minmax`` (0 when the window traded
nothing). The window mean is a left-to-right sum, so its bits do not depend on how many windows are normalised
together.

A window is **complete** when the symbol has ``sequence_length`` bars up to ``t`` and every value is finite with
positive prices and non-negative volume; an incomplete window is never trained on, and live trading reports it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contracts.model_meta import OHLCV_CHANNELS, SEQUENCE_NORMALIZATIONS

PRICE_CHANNELS = ("open", "high", "low", "close", "vwap")
DEFAULT_CHANNELS = ("open", "high", "low", "close", "volume")
Normalization = Literal["returns", "log_returns", "minmax"]


class SequenceSpec(BaseModel):
    """What a raw-sequence model reads.

    Attributes:
        length: bars per window (``sequence_length``, 16; > 0).
        channels: OHLCV columns in window order (``sequence_channels``: open, high, low, close, volume); must
            include ``close``, the anchor of every normalisation.
        normalization: ``returns`` (default), ``log_returns`` or ``minmax`` (module docstring).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    length: int = Field(16, gt=0, le=512)
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    normalization: Normalization = "returns"

    @field_validator("channels")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in v if c not in OHLCV_CHANNELS]
        if unknown or not v:
            raise ValueError(f"sequence channels {list(v)}: each must be one of {OHLCV_CHANNELS}")
        if len(set(v)) != len(v):
            raise ValueError(f"sequence channels {list(v)} repeat a channel")
        return v

    @model_validator(mode="after")
    def _anchor(self) -> SequenceSpec:
        if "close" not in self.channels:
            raise ValueError(f"sequence channels {list(self.channels)} must include 'close', the normalisation anchor")
        return self

    @classmethod
    def from_meta(cls, length: int | None, channels: list[str] | None, normalization: str | None) -> SequenceSpec:
        """The spec a model_meta's 1.3 fields describe (``ValueError`` naming what this module cannot serve)."""
        if normalization not in SEQUENCE_NORMALIZATIONS:
            raise ValueError(f"sequence_normalization {normalization!r} is not one of {SEQUENCE_NORMALIZATIONS}")
        try:
            return cls(length=int(length or 0), channels=tuple(channels or ()), normalization=normalization)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = {"length": "sequence_length", "channels": "sequence_channels"}.get(
                str(err["loc"][0]) if err["loc"] else "", "sequence_channels"
            )
            raise ValueError(f"{field}: {err['msg'].removeprefix('Value error, ')}") from None


def spec_from_params(params: dict) -> SequenceSpec:
    """The window a raw-sequence family's hyper-parameters ask for (``sequence_length``, ``channels``,
    ``normalization``)."""
    return SequenceSpec(
        length=int(params["sequence_length"]),
        channels=tuple(params["channels"]),
        normalization=params["normalization"],
    )


def raw_windows(frame: pl.DataFrame, spec: SequenceSpec) -> tuple[np.ndarray, np.ndarray]:
    """One raw window per row of ``frame`` (``ts``, ``symbol`` and the channels; any row order).

    Returns ``(windows, enough)``: float64 ``[rows, length, channels]`` in the rows' order (NaN where the symbol
    has fewer than ``length`` bars up to the row) and the mask of rows with a full window.
    """
    missing = [c for c in spec.channels if c not in frame.columns]
    if missing:
        raise KeyError(f"raw-sequence channel column(s) {missing} missing from the bars")
    order = np.lexsort((frame["ts"].to_physical().to_numpy(), frame["symbol"].rank("dense").to_numpy()))
    ordered = frame[order]
    values = ordered.select(pl.col(c).cast(pl.Float64) for c in spec.channels).to_numpy()
    symbol_id = ordered["symbol"].rle_id().to_numpy()
    n = len(values)
    starts = np.flatnonzero(np.r_[True, symbol_id[1:] != symbol_id[:-1]]) if n else np.zeros(0, int)
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    position = np.arange(n) - first  # bars of the symbol before this one
    enough_sorted = position >= spec.length - 1
    idx = np.arange(n)[:, None] - (spec.length - 1) + np.arange(spec.length)[None, :]
    windows_sorted = values[np.clip(idx, 0, max(n - 1, 0))] if n else np.zeros((0, spec.length, len(spec.channels)))
    windows_sorted[~enough_sorted] = np.nan
    windows = np.empty_like(windows_sorted)
    windows[order] = windows_sorted
    enough = np.empty(n, dtype=bool)
    enough[order] = enough_sorted
    return windows, enough


def complete_windows(raw: np.ndarray, channels: tuple[str, ...] | list[str]) -> np.ndarray:
    """Rows of ``raw`` ``[n, length, C]`` whose values are all finite, prices positive and volume non-negative."""
    ok = np.isfinite(raw).all(axis=(1, 2))
    for j, c in enumerate(channels):
        col = raw[:, :, j]
        with np.errstate(invalid="ignore"):
            ok &= (col > 0).all(axis=1) if c in PRICE_CHANNELS else (col >= 0).all(axis=1)
    return ok


def _window_mean(x: np.ndarray) -> np.ndarray:
    """Mean over axis 1 of ``[n, length]`` as a left-to-right sum (the same bits for any ``n``)."""
    total = x[:, 0].copy()
    for k in range(1, x.shape[1]):
        total = total + x[:, k]
    return total / x.shape[1]


def normalize_windows(raw: np.ndarray, spec: SequenceSpec) -> np.ndarray:
    """The normalised copy of raw windows ``[n, length, channels]`` (module docstring); float64."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 3 or raw.shape[1:] != (spec.length, len(spec.channels)):
        raise ValueError(f"windows of shape {raw.shape}; expected (n, {spec.length}, {len(spec.channels)})")
    out = np.empty_like(raw)
    prices = [j for j, c in enumerate(spec.channels) if c in PRICE_CHANNELS]
    anchor = raw[:, -1, spec.channels.index("close")][:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        if spec.normalization == "minmax":
            lo = raw[:, :, prices].min(axis=(1, 2))[:, None]
            hi = raw[:, :, prices].max(axis=(1, 2))[:, None]
            width = hi - lo
            flat = width == 0
            for j in prices:
                out[:, :, j] = np.where(flat, 0.5, (raw[:, :, j] - lo) / np.where(flat, 1.0, width))
        else:
            for j in prices:
                ratio = raw[:, :, j] / anchor
                out[:, :, j] = ratio - 1.0 if spec.normalization == "returns" else np.log(ratio)
        for j, c in enumerate(spec.channels):
            if c in PRICE_CHANNELS:
                continue
            v = raw[:, :, j]
            if spec.normalization == "minmax":
                top = v.max(axis=1)[:, None]
                out[:, :, j] = np.where(top > 0, v / np.where(top > 0, top, 1.0), 0.0)
            else:
                out[:, :, j] = np.log((1.0 + v) / (1.0 + _window_mean(v))[:, None])
    return out


def sequence_inputs(frame: pl.DataFrame, spec: SequenceSpec) -> tuple[np.ndarray, np.ndarray]:
    """Normalised windows for every row of ``frame`` and the mask of complete ones (what training reads)."""
    raw, enough = raw_windows(frame, spec)
    complete = enough & complete_windows(raw, spec.channels)
    return normalize_windows(raw, spec), complete
