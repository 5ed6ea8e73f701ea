"""The feature set: engines agree, nothing looks ahead, warm-up is NaN, scale-free where claimed."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.features import FEATURE_NAMES, FeatureConfig, compute_features
from market.loader import align_asset
from market.schema import perp_symbol
from market.synthetic import SyntheticConfig, generate_market

SMALL = FeatureConfig(vol_window=30, corr_window=60, norm_window=120, volume_window=120,
                      bars_per_day=240, spread_window=20)  # fmt: skip


def aligned_market(days: float = 3, seed: int = 1, assets=("BTC", "ETH", "DOGE")) -> pd.DataFrame:
    market = generate_market(SyntheticConfig(assets=assets, days=days, seed=seed))
    grid = market.ohlcv[perp_symbol(assets[0])].index
    frames = {
        a: align_asset(market.ohlcv[perp_symbol(a)], market.mark[perp_symbol(a)],
                       market.funding[perp_symbol(a)], grid, "1m")
        for a in assets
    }  # fmt: skip
    return pd.concat(frames, axis=1, names=["asset", "field"])


@pytest.fixture(scope="module")
def aligned():
    return aligned_market()


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    x, y = a.to_numpy(), b.to_numpy()
    np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
    ok = ~np.isnan(x)
    np.testing.assert_allclose(x[ok], y[ok], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("config", [FeatureConfig(), SMALL])
def test_fast_engine_agrees_with_ta_to_1e_9_on_every_feature(aligned, config):
    fast = compute_features(aligned, config, engine="fast")
    reference = compute_features(aligned, config, engine="ta")

    assert list(fast.columns) == list(reference.columns)
    for column in fast.columns:
        assert_same(fast[[column]], reference[[column]])


def test_output_has_every_feature_per_asset_as_float64(aligned):
    features = compute_features(aligned, SMALL)

    assert features.columns.names == ["asset", "feature"]
    assert list(features["ETH"].columns) == list(FEATURE_NAMES)
    assert (features.dtypes == np.float64).all()
    assert features.index.equals(aligned.index)
    assert np.isfinite(features.iloc[-1].to_numpy()).all()


def perturb_after(aligned: pd.DataFrame, cut: int, seed: int) -> pd.DataFrame:
    """Scramble every input after row `cut`, keeping bars valid (high >= open, close >= low)."""
    rng = np.random.default_rng(seed)
    out = aligned.copy()
    n = len(out) - cut - 1
    for asset in out.columns.get_level_values(0).unique():
        scale = rng.uniform(0.5, 2.0, n)
        for field in ("open", "high", "low", "close", "mark"):
            out.loc[out.index[cut + 1 :], (asset, field)] *= scale
        out.loc[out.index[cut + 1 :], (asset, "volume")] *= rng.uniform(0, 3, n)
        out.loc[out.index[cut + 1 :], (asset, "funding_rate")] += rng.normal(0, 1e-3, n)
        out.loc[out.index[cut + 1 :], (asset, "funding_event")] = 1.0
    return out


@settings(max_examples=8, deadline=None)
@given(
    cut=st.integers(300, 4000), seed=st.integers(0, 1000), engine=st.sampled_from(["fast", "ta"])
)
def test_no_feature_at_or_before_t_changes_when_the_future_changes(aligned, cut, seed, engine):
    before = compute_features(aligned, SMALL, engine=engine)
    after = compute_features(perturb_after(aligned, cut, seed), SMALL, engine=engine)

    pd.testing.assert_frame_equal(before.iloc[: cut + 1], after.iloc[: cut + 1])
    assert not before.iloc[cut + 1 :].equals(after.iloc[cut + 1 :])


def test_atr_warm_up_rows_are_nan_not_zero(aligned):
    atr = compute_features(aligned, engine="ta")[("BTC", "atr")]

    assert atr.iloc[:13].isna().all()
    assert (atr.iloc[13:] > 0).all()


def test_scale_free_features_ignore_the_price_level(aligned):
    scaled = aligned.copy()
    for asset in scaled.columns.get_level_values(0).unique():
        for field in ("open", "high", "low", "close", "mark"):
            scaled[(asset, field)] *= 10.0
    base, moved = compute_features(aligned, SMALL), compute_features(scaled, SMALL)

    for name in ("rsi", "bb_pband", "atr_pct", "macd_diff", "vwap_dist", "log_return_z",
                 "bb_wband_z", "corr_market", "basis"):  # fmt: skip
        np.testing.assert_allclose(moved.xs(name, axis=1, level=1), base.xs(name, axis=1, level=1),
                                   rtol=1e-6, atol=1e-9)  # fmt: skip
    np.testing.assert_allclose(moved[("BTC", "atr")], 10 * base[("BTC", "atr")], rtol=1e-9)


def test_last_funding_rate_changes_only_at_funding_events(aligned):
    features = compute_features(aligned, SMALL)
    last = features[("BTC", "funding_rate_last")]
    events = aligned[("BTC", "funding_event")] > 0

    changed = last.ne(last.shift()) & last.notna() & last.shift().notna()
    assert changed.sum() > 0
    assert events[changed].all()
    assert last[: events.idxmax()].iloc[:-1].isna().all()


def test_malformed_input_is_refused(aligned):
    with pytest.raises(ValueError, match="lacks"):
        compute_features(aligned.drop(columns=("ETH", "mark")))
    with pytest.raises(ValueError, match="increasing"):
        compute_features(aligned.iloc[::-1])
    with pytest.raises(ValueError, match="aligned frame"):
        compute_features(aligned["BTC"])
    with pytest.raises(ValueError, match="engine"):
        compute_features(aligned, engine="talib")
