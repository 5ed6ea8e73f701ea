"""Regimes use past data only, label what they should, and run fast on a year of minutes."""

import time

import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.regimes import (
    RegimeConfig,
    fit_gaussian_hmm,
    market_regimes,
    trend_regime,
    volatility_regime,
)

SMALL = RegimeConfig(vol_window=20, min_history=400, fast=10, slow=50)


def path(returns, start=100.0, index=None):
    prices = start * np.exp(np.cumsum(returns))
    return pd.Series(prices, index=index if index is not None else pd.RangeIndex(len(prices)))


@pytest.fixture(scope="module")
def clustered():
    """Returns whose volatility switches between calm and wild spells of 500 bars."""
    rng = np.random.default_rng(4)
    vol = np.repeat(rng.choice([0.001, 0.004], size=8), 500)
    return path(rng.normal(0, 1, vol.size) * vol)


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(0, 3_998), seed=st.integers(0, 2**16), truncate=st.booleans())
def test_labels_up_to_t_ignore_everything_after_t(clustered, cut, seed, truncate):
    rng = np.random.default_rng(seed)
    future = clustered.iloc[cut] * np.exp(np.cumsum(rng.normal(0.01, 0.05, 3_999 - cut)))
    altered = pd.concat([clustered.iloc[: cut + 1], pd.Series(future, index=range(cut + 1, 4_000))])
    other = clustered.iloc[: cut + 1] if truncate else altered

    original = market_regimes(clustered, SMALL).iloc[: cut + 1]
    changed = market_regimes(other, SMALL).iloc[: cut + 1]

    assert list(changed) == list(original)


def test_several_assets_are_labelled_causally_through_their_index(clustered):
    frame = pd.DataFrame({"BTC": clustered, "ETH": clustered**1.2})
    altered = frame.copy()
    altered.iloc[2_500:] *= 3.0

    labels, labels_altered = market_regimes(frame, SMALL), market_regimes(altered, SMALL)

    assert list(labels.iloc[:2_500]) == list(labels_altered.iloc[:2_500])
    assert list(labels.iloc[2_500:]) != list(labels_altered.iloc[2_500:])


def test_a_volatility_burst_is_high_and_a_lull_is_low_against_past_volatility():
    rng = np.random.default_rng(2)
    vol = np.r_[np.full(2_000, 0.002), np.full(300, 0.01), np.full(300, 0.0005)]
    series = path(rng.normal(0, 1, vol.size) * vol)

    labels = volatility_regime(series, SMALL)

    assert (labels.iloc[2_050:2_300] == "high_vol").all()
    assert (labels.iloc[2_350:2_600] == "low_vol").all()


def test_warm_up_bars_are_unknown_rather_than_guessed(clustered):
    labels = market_regimes(clustered, SMALL)

    assert (labels.iloc[: SMALL.slow - 1] == "unknown_vol/unknown_trend").all()
    assert labels.iloc[: SMALL.min_history].str.startswith("unknown_vol").all()
    assert not labels.iloc[SMALL.min_history + SMALL.vol_window :].str.startswith("unknown").any()


@pytest.mark.parametrize(("drift", "label"), [(0.0005, "uptrend"), (-0.0005, "downtrend")])
def test_a_steady_drift_is_a_trend(drift, label):
    series = path(np.random.default_rng(5).normal(drift, 0.001, 3_000))

    labels = trend_regime(series, SMALL).iloc[SMALL.slow :]

    assert (labels == label).mean() > 0.9


def test_a_driftless_random_walk_is_mostly_sideways():
    series = path(np.random.default_rng(6).normal(0, 0.001, 20_000))

    labels = trend_regime(series, SMALL).iloc[SMALL.slow :]

    assert (labels == "sideways").mean() > 0.5
    assert (labels == "uptrend").mean() == pytest.approx((labels == "downtrend").mean(), abs=0.1)


def test_a_year_of_minute_bars_is_labelled_in_under_two_seconds():
    n = 525_600
    index = pd.date_range("2024-01-01", periods=n, freq="min")
    series = path(np.random.default_rng(0).normal(0, 0.001, n), 30_000.0, index)

    start = time.perf_counter()
    labels = market_regimes(series)
    elapsed = time.perf_counter() - start

    assert len(labels) == n
    assert elapsed < 2.0


@pytest.mark.parametrize("bad", [np.nan, 0.0, -5.0])
def test_bad_prices_are_rejected(bad):
    series = path(np.zeros(100))
    series.iloc[50] = bad

    with pytest.raises(ValueError, match="positive with no NaN"):
        market_regimes(series)


def test_a_fast_average_longer_than_the_slow_one_is_rejected():
    with pytest.raises(pydantic.ValidationError, match="fast"):
        RegimeConfig(fast=200, slow=100)


@pytest.fixture(scope="module")
def two_state_returns():
    rng = np.random.default_rng(9)
    states = np.repeat(rng.integers(0, 2, size=40), 75)
    returns = rng.normal(0, np.where(states == 1, 0.04, 0.01))
    return returns, states


def test_hmm_recovers_calm_and_wild_states(two_state_returns):
    returns, states = two_state_returns

    model = fit_gaussian_hmm(returns[:2_000], n_states=2)
    probs = model.filter(returns)

    np.testing.assert_allclose(model.stds, [0.01, 0.04], rtol=0.15)
    assert model.transition[0, 0] > 0.9
    assert ((probs[:, 1] > 0.5) == (states == 1)).mean() > 0.9


def test_hmm_filtered_probabilities_ignore_future_observations(two_state_returns):
    returns, _ = two_state_returns
    model = fit_gaussian_hmm(returns[:1_000], n_states=2, n_iter=20)
    altered = returns.copy()
    altered[1_500:] *= 10

    probs, probs_altered = model.filter(returns), model.filter(altered)

    np.testing.assert_array_equal(probs[:1_500], probs_altered[:1_500])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
