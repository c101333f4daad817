"""Raw OHLCV sequences: the training windows and the live ring buffer normalise the same bars to the same bits."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from live.bar_window import BarOrderError, BarWindow
from ml.sequences import PRICE_CHANNELS, SequenceSpec, normalize_windows, raw_windows, sequence_inputs
from ml.synthetic import SyntheticMarketConfig, make_market

CHANNELS = ("open", "high", "low", "close", "volume", "vwap")


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    market = make_market(SyntheticMarketConfig(n_symbols=7, n_bars=120, seed=3))
    # one symbol misses two bars: its windows are its own last bars, in training and live alike
    return market.filter(~((pl.col("symbol") == "SYM002") & pl.col("ts").is_in(market["ts"].unique().sort()[40:42])))


def _micros(ts) -> int:
    return int(pl.Series([ts]).dt.epoch("us")[0])


@pytest.mark.parametrize("normalization", ["returns", "log_returns", "minmax"])
def test_live_buffer_window_equals_training_window_bit_for_bit(bars, normalization):
    spec = SequenceSpec(length=12, channels=CHANNELS, normalization=normalization)
    shuffled = bars.sample(fraction=1.0, shuffle=True, seed=1)  # training windows do not depend on row order
    train, complete = sequence_inputs(shuffled, spec)
    key = {k: i for i, k in enumerate(shuffled.select("ts", "symbol").iter_rows())}
    buffer = BarWindow(capacity=20, columns=CHANNELS)
    checked = 0
    for (ts,), part in bars.sort("ts").partition_by("ts", as_dict=True, maintain_order=True).items():
        part = part.sort("symbol")
        syms = part["symbol"].to_list()
        buffer.push(_micros(ts), syms, part.select(CHANNELS).to_numpy())
        live, live_complete = buffer.windows(syms, spec)
        rows = [key[(ts, s)] for s in syms]
        assert np.array_equal(live, train[rows], equal_nan=True)
        assert (live_complete == complete[rows]).all()
        checked += int(live_complete.sum())
    assert checked > 600  # most windows were complete and compared, not just NaN against NaN


def test_window_is_the_symbols_last_bars_oldest_first(bars):
    spec = SequenceSpec(length=4, channels=("close", "volume"))
    raw, enough = raw_windows(bars, spec)
    sym = bars.with_row_index("i").filter(pl.col("symbol") == "SYM002").sort("ts")
    i = int(sym["i"][50])
    expected = sym[47:51].select("close", "volume").to_numpy()
    assert np.array_equal(raw[i], expected) and enough[i]
    assert not enough[int(sym["i"][2])]  # its third bar: no four bars yet


def test_normalisations_follow_their_definitions():
    raw = np.array([[[10.0, 11.0, 9.0, 10.0, 100.0], [10.0, 12.0, 10.0, 11.0, 300.0]]])
    spec = SequenceSpec(length=2, normalization="returns")
    out = normalize_windows(raw, spec)
    assert out[0, 1, 3] == 0.0 and out[0, 1, 1] == pytest.approx(1 / 11)  # anchor: the last close (11)
    assert out[0, :, 4] == pytest.approx(np.log(np.array([101.0, 301.0]) / 201.0))  # volume against its mean
    mm = normalize_windows(raw, spec.model_copy(update={"normalization": "minmax"}))
    assert mm[0, 0, 2] == 0.0 and mm[0, 1, 1] == 1.0 and mm[0, :, 4] == pytest.approx([1 / 3, 1.0])
    lr = normalize_windows(raw, spec.model_copy(update={"normalization": "log_returns"}))
    assert lr[0, 0, 0] == pytest.approx(np.log(10 / 11))


def test_relative_volume_survives_every_normalisation():
    """Two windows whose last bar trades 3x its usual volume at different volume levels look the same."""
    base = np.array([[10.0, 10.0, 10.0, 10.0, 100.0]] * 3 + [[10.0, 10.0, 10.0, 10.0, 300.0]])
    raw = np.stack([base, base * np.array([1, 1, 1, 1, 50.0])])
    for norm in ("returns", "log_returns", "minmax"):
        out = normalize_windows(raw, SequenceSpec(length=4, normalization=norm))
        assert out[0, -1, 4] > out[0, 0, 4]
        assert out[0, -1, 4] == pytest.approx(out[1, -1, 4], rel=0.02)


def test_a_bar_twice_or_out_of_order_is_an_error_and_writes_nothing():
    buf = BarWindow(capacity=3, columns=("close", "volume"))
    buf.push(100, ["A", "B"], np.array([[1.0, 5.0], [2.0, 6.0]]))
    with pytest.raises(BarOrderError, match="again"):
        buf.push(100, ["A"], np.array([[1.5, 5.0]]))
    with pytest.raises(BarOrderError, match="out of order"):
        buf.push(50, ["B", "C"], np.array([[1.5, 5.0], [3.0, 1.0]]))
    with pytest.raises(BarOrderError, match="twice in one call"):
        buf.push(200, ["A", "A"], np.array([[1.5, 5.0], [1.6, 5.0]]))
    buf.push(200, ["A", "B"], np.array([[1.1, 5.0], [2.1, 6.0]]))
    raw = buf.raw(["A", "B", "C"], 2, ("close",))
    assert raw[:, :, 0].tolist()[:2] == [[1.0, 1.1], [2.0, 2.1]]
    assert np.isnan(raw[2]).all()  # C's rejected bar was not written


def test_window_keeps_the_newest_bars():
    buf = BarWindow(capacity=3, columns=("close",))
    for t in range(1, 8):
        buf.push(t, ["A"], np.array([[float(t)]]))
    assert buf.raw(["A"], 3, ("close",))[0, :, 0].tolist() == [5.0, 6.0, 7.0]
    with pytest.raises(ValueError, match="longer than the window"):
        buf.raw(["A"], 4, ("close",))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"length": 0}, "greater than 0"),
        ({"channels": ("open", "volume")}, "must include 'close'"),
        ({"channels": ("close", "spread")}, "must be one of"),
        ({"normalization": "zscore"}, "returns"),
    ],
)
def test_sequence_spec_rejects_what_cannot_be_normalised(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceSpec(**kwargs)


def test_price_channels_cover_every_contract_channel_but_volume():
    from contracts.model_meta import OHLCV_CHANNELS

    assert set(OHLCV_CHANNELS) - set(PRICE_CHANNELS) == {"volume"}
