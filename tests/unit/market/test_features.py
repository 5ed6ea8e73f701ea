"""market.features: both engines agree, use the past only, and keep their promises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market import _feature_rolling as rolling
from market._features_ta import zscore
from market.features import (
    FEATURE_NAMES,
    NORMALISED,
    FeatureConfig,
    compute_features,
    make_aligned_frame,
)

ENGINES = ("fast", "ta")
PRICES = ("open", "high", "low", "close", "mark")
SMALL = FeatureConfig(
    vol_window=20, corr_window=50, norm_window=100, volume_window=100, spread_window=10,
    bars_per_day=120,
)
"""Short windows, so every feature is defined within a few hundred bars."""


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """20k 1m bars of BTC-, ETH- and 1.0-priced assets."""
    return make_aligned_frame(20_000, seed=1)


@pytest.fixture(scope="module")
def features(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {engine: compute_features(frame, engine=engine) for engine in ENGINES}


def assert_engines_agree(fast: pd.DataFrame, ta: pd.DataFrame) -> None:
    for column in fast.columns:
        a, b = fast[column].to_numpy(), ta[column].to_numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"NaNs of {column}")
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, err_msg=str(column))


def with_flat_gaps(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with loader-style forward-filled gaps: one asset alone, then all at once."""
    out = frame.copy()
    for assets, rows in ((["ETH"], slice(1000, 1300)), (["BTC", "ETH", "SOL"], slice(2000, 2150))):
        for asset in assets:
            last = out[(asset, "close")].iloc[rows.start - 1]
            for field in PRICES:
                out.loc[out.index[rows], (asset, field)] = last
            out.loc[out.index[rows], (asset, "volume")] = 0.0
            out.loc[out.index[rows], (asset, "filled")] = 1.0
    return out


def test_fast_engine_matches_ta_engine_on_every_feature(features):
    fast, ta = features["fast"], features["ta"]

    assert_engines_agree(fast, ta)
    assert fast.notna().any().all(), "every feature must have values to compare"


def test_engines_agree_on_flat_gaps_where_windows_are_constant():
    frame = with_flat_gaps(make_aligned_frame(3000, seed=2))

    fast = compute_features(frame, SMALL, engine="fast")
    ta = compute_features(frame, SMALL, engine="ta")

    assert_engines_agree(fast, ta)
    flat = fast.iloc[1200:1300]["ETH"]
    assert flat["vwap_dist"].isna().all() and flat["corr_first"].isna().all()
    assert (flat[["log_return_z", "volume_z", "obv_z"]] == 0.0).all().all()
    assert fast.iloc[2100:2150]["BTC"]["corr_market"].isna().all()


def perturbed_after(frame: pd.DataFrame, t: int, seed: int) -> pd.DataFrame:
    """`frame` with every row after t replaced by another market's (funding events too)."""
    other = make_aligned_frame(len(frame), seed=seed + 1000)
    rng = np.random.default_rng(seed)
    for asset in frame.columns.get_level_values("asset").unique():
        events = (rng.random(len(frame)) < 0.05).astype(float)
        other[(asset, "funding_event")] = events
        other[(asset, "funding_rate")] = events * rng.normal(0.0, 1e-3, len(frame))
    out = frame.copy()
    out.iloc[t + 1 :] = other.iloc[t + 1 :].to_numpy()
    return out


@pytest.fixture(scope="module")
def small_frame() -> pd.DataFrame:
    return make_aligned_frame(700, seed=3)


@pytest.fixture(scope="module")
def small_features(small_frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {engine: compute_features(small_frame, SMALL, engine=engine) for engine in ENGINES}


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=12, deadline=None)
@given(t=st.integers(0, 698), seed=st.integers(0, 2**16))
def test_features_at_or_before_t_ignore_every_input_after_t(
    small_frame, small_features, engine, t, seed
):
    changed = perturbed_after(small_frame, t, seed)

    features = compute_features(changed, SMALL, engine=engine)

    before = small_features[engine].iloc[: t + 1].to_numpy()
    np.testing.assert_array_equal(features.iloc[: t + 1].to_numpy(), before)
    assert not features.iloc[t + 1 :].equals(small_features[engine].iloc[t + 1 :])


def test_rolling_kernels_repeat_pandas_bit_for_bit_on_prices_flats_and_gaps():
    rng = np.random.default_rng(9)
    x = 40_000.0 * np.exp(np.cumsum(rng.standard_t(4, 30_000) * 1e-3))
    x[5000:5400] = x[4999]
    x[9000:9030] = 1e-3
    x[12000:12050] = np.nan
    series, out = pd.Series(x), np.empty_like(x)

    for window in (1, 2, 20, 60, 1440):
        for ddof in (0, 1):
            rolling.rolling_std(x, window, ddof, out)
            np.testing.assert_array_equal(out, series.rolling(window).std(ddof=ddof))
        rolling.pandas_sum(x, window, False, out)
        np.testing.assert_array_equal(out, series.rolling(window).sum())
        rolling.pandas_sum(x, window, True, out)
        np.testing.assert_array_equal(out, series.rolling(window).mean())
        rolling.zscore(x, window, out)
        np.testing.assert_array_equal(out, zscore(series, window))


FIRST_VALID = {
    "log_return": 1, "realized_vol": 60, "daily_vol": 60, "rsi": 13, "macd": 25,
    "macd_signal": 33, "macd_diff": 33, "bb_pband": 19, "bb_wband": 19, "atr": 13,
    "atr_pct": 13, "obv_z": 1439, "vwap_dist": 13, "volume_z": 1439,
    "dollar_volume_daily": 1439, "spread_cs": 60, "funding_rate_last": 479,
    "funding_bp": 479, "basis": 0, "corr_first": 240, "corr_market": 240,
}
"""First defined row of each feature under the default config (funding: the bar closing 08:00)."""


@pytest.mark.parametrize("engine", ENGINES)
def test_warm_up_rows_are_nan_until_each_window_fills_then_values_follow(features, engine):
    expected = FIRST_VALID | {f"{n}_z": FIRST_VALID[n] + 1439 for n in NORMALISED}

    first_valid = {
        name: int(np.argmax(features[engine][("SOL", name)].notna().to_numpy()))
        for name in FEATURE_NAMES
    }

    assert first_valid == expected
    for name, row in expected.items():
        assert features[engine][("SOL", name)].iloc[row:].notna().all(), name


@pytest.mark.parametrize("engine", ENGINES)
def test_atr_warm_up_rows_are_nan_not_zero(features, engine):
    atr = features[engine]["BTC"][["atr", "atr_pct"]]

    assert atr.iloc[:13].isna().all().all()
    assert (atr.iloc[13:] > 0).all().all()


@pytest.mark.parametrize("engine", ENGINES)
def test_scale_free_features_ignore_the_price_unit_and_raw_ones_scale(engine):
    frame = make_aligned_frame(4000, seed=4)
    scaled = frame.copy()
    for asset in ("BTC", "ETH", "SOL"):
        for field in PRICES:
            scaled[(asset, field)] *= 10.0

    base = compute_features(frame, SMALL, engine=engine)
    moved = compute_features(scaled, SMALL, engine=engine)

    raw = {"atr", "dollar_volume_daily"}
    free = [n for n in FEATURE_NAMES if n not in raw]
    for asset in ("BTC", "ETH", "SOL"):
        for name in free:
            np.testing.assert_allclose(
                moved[(asset, name)], base[(asset, name)], rtol=1e-6, atol=1e-7, err_msg=name
            )
        for name in raw:
            np.testing.assert_allclose(moved[(asset, name)], 10.0 * base[(asset, name)], rtol=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_funding_rate_last_changes_only_at_funding_events(frame, features, engine):
    for asset in ("BTC", "SOL"):
        last = features[engine][(asset, "funding_rate_last")].to_numpy()
        events = frame[(asset, "funding_event")].to_numpy() > 0
        rates = frame[(asset, "funding_rate")].to_numpy()

        same = (last[1:] == last[:-1]) | (np.isnan(last[1:]) & np.isnan(last[:-1]))
        changed = np.flatnonzero(~same) + 1

        assert set(changed) <= set(np.flatnonzero(events))
        np.testing.assert_array_equal(last[events], rates[events])
        assert np.isnan(last[: np.argmax(events)]).all()


def test_z_scores_use_the_norm_window_ending_at_t(features):
    fast = features["fast"]["ETH"]

    for name in ("log_return", "atr_pct", "basis"):
        x, z = fast[name].to_numpy(), fast[f"{name}_z"].to_numpy()
        for t in (5000, 12345, 19999):
            window = x[t - 1439 : t + 1]
            expected = (x[t] - window.mean()) / window.std(ddof=1)
            assert z[t] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_output_has_the_input_index_and_a_float64_column_per_asset_and_feature(frame, features):
    fast = features["fast"]

    assert fast.index.equals(frame.index)
    assert fast.columns.names == ["asset", "feature"]
    assert list(fast.columns) == [(a, n) for a in ("BTC", "ETH", "SOL") for n in FEATURE_NAMES]
    assert (fast.dtypes == np.float64).all()
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


@pytest.mark.parametrize("engine", ENGINES)
def test_frames_shorter_than_the_windows_give_nan_rows_not_errors(engine):
    frame = make_aligned_frame(5, seed=5)

    features = compute_features(frame, engine=engine)

    assert features.shape == (5, 3 * len(FEATURE_NAMES))
    assert features.xs("atr", axis=1, level="feature").isna().all().all()


def test_daily_features_infer_bars_per_day_from_the_bar_spacing():
    frame = make_aligned_frame(1000, seed=6)
    frame.index = pd.date_range("2024-01-01", periods=1000, freq="5min", tz="UTC", name="timestamp")

    features = compute_features(frame)["BTC"]

    notional = (frame[("BTC", "close")] * frame[("BTC", "volume")]).to_numpy()
    daily = features["dollar_volume_daily"].to_numpy()
    assert np.isnan(daily[:287]).all()
    assert daily[500] == pytest.approx(notional[213:501].sum(), rel=1e-12)
    np.testing.assert_allclose(features["daily_vol"], features["realized_vol"] * np.sqrt(288))


def _drop_field(f: pd.DataFrame) -> pd.DataFrame:
    return f.drop(columns=[("ETH", "mark")])


def _set(field: str, row: int, value: float):
    def apply(f: pd.DataFrame) -> pd.DataFrame:
        f = f.copy()
        f.loc[f.index[row], ("SOL", field)] = value
        return f

    return apply


MALFORMED = {
    "missing field": (_drop_field, "lacks fields \\['mark'\\] for asset 'ETH'"),
    "unsorted index": (lambda f: f.iloc[[1, 0, *range(2, len(f))]], "strictly increasing"),
    "duplicate timestamps": (lambda f: f.iloc[[0, 0, *range(1, len(f))]], "strictly increasing"),
    "flat columns": (lambda f: f.droplevel("asset", axis=1), "MultiIndex"),
    "naive index": (lambda f: f.tz_localize(None), "tz-aware"),
    "nan close": (_set("close", 7, np.nan), "SOL close is not finite"),
    "zero price": (_set("low", 7, 0.0), "SOL low is not positive"),
    "negative volume": (_set("volume", 7, -1.0), "SOL volume is negative"),
    "high below low": (_set("high", 7, 1e-9), "SOL high is below low"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_frames_raise_a_value_error_saying_what_is_wrong(case):
    frame = make_aligned_frame(50, seed=7)
    damage, message = MALFORMED[case]

    with pytest.raises(ValueError, match=message):
        compute_features(damage(frame))


def test_unknown_engines_and_config_keys_are_errors():
    frame = make_aligned_frame(50, seed=8)

    with pytest.raises(ValueError, match="unknown feature engine"):
        compute_features(frame, engine="talib")  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        FeatureConfig(rsi_windw=14)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        FeatureConfig().rsi_window = 7  # type: ignore[misc]
