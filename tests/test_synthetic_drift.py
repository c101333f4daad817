"""The synthetic market that drifts: from a known bar the planted volume signal decays or flips (ml.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.synthetic import SyntheticMarketConfig, make_market, volume_signal_ic


def _volume_ic_per_timestamp(cfg: SyntheticMarketConfig) -> np.ndarray:
    """Per bar t: the cross-sectional correlation of symbols' log-volume shock at t-1 with their return at t."""
    bars = make_market(cfg).sort("symbol", "ts")
    n, t = cfg.n_symbols, cfg.n_bars + cfg.live_bars
    lv = np.log(bars["volume"].to_numpy().reshape(n, t))
    lv = lv - lv.mean(axis=1, keepdims=True)  # each symbol's base volume out; the intraday shape is common
    r = np.diff(np.log(bars["close"].to_numpy().reshape(n, t)), axis=1)  # r[:, k] is the return of bar k + 1
    x, y = lv[:, :-1], r
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean(0)) / y.std(0)
    return np.concatenate([[np.nan], (x * y).mean(0)])  # index = the bar of the return


@pytest.mark.parametrize("factor", [-1.0, 0.0])
def test_the_volume_signal_changes_at_the_drift_bar_as_documented(factor: float) -> None:
    cfg = SyntheticMarketConfig(n_bars=3000, drift_at_bar=1500, drift_volume_factor=factor, seed=11)
    ic = _volume_ic_per_timestamp(cfg)
    before, after = np.nanmean(ic[1:1500]), np.nanmean(ic[1500:])
    assert volume_signal_ic(cfg, 1499) == pytest.approx(0.048) and volume_signal_ic(cfg, 1500) == 0.048 * factor
    assert before == pytest.approx(volume_signal_ic(cfg, 1499), abs=0.015)
    assert after == pytest.approx(volume_signal_ic(cfg, 1500), abs=0.015)


def test_without_a_drift_the_market_is_unchanged_and_a_drift_outside_it_is_refused() -> None:
    plain = make_market(SyntheticMarketConfig(n_bars=400))
    assert plain.equals(make_market(SyntheticMarketConfig(n_bars=400, drift_volume_factor=-1.0)))  # no drift bar
    assert not plain.equals(make_market(SyntheticMarketConfig(n_bars=400, drift_at_bar=200, drift_volume_factor=-1)))
    with pytest.raises(ValueError, match="past the market's last bar"):
        SyntheticMarketConfig(n_bars=400, drift_at_bar=400)
