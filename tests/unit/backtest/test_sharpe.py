"""Return and equity series maths: hand-computed values, the DSR paper's example, properties."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import norm

from backtest.sharpe import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    longest_underwater,
    max_drawdown,
    moments,
    per_period_rate,
    probabilistic_sharpe_ratio,
    sharpe_ratio,
    sortino_ratio,
    step_returns,
)

RETURNS = [0.02, -0.01, 0.03, 0.0]


def test_sharpe_ratio_matches_hand_arithmetic():
    rf = 0.001
    excess = [0.019, -0.011, 0.029, -0.001]
    mean = (0.019 - 0.011 + 0.029 - 0.001) / 4  # 0.009
    var = sum((x - mean) ** 2 for x in excess) / 3  # (1e-4 + 4e-4 + 4e-4 + 1e-4) / 3
    assert var == pytest.approx(1e-3 / 3, rel=1e-12)

    assert sharpe_ratio(RETURNS, rf, 365.0) == pytest.approx(
        0.009 / math.sqrt(1e-3 / 3) * math.sqrt(365.0), rel=1e-12
    )


def test_sortino_ratio_averages_the_downside_over_every_period():
    rf = 0.001
    downside = math.sqrt((0.011**2 + 0.001**2) / 4)  # only -0.011 and -0.001 fall short

    assert sortino_ratio(RETURNS, rf, 12.0) == pytest.approx(
        0.009 / downside * math.sqrt(12.0), rel=1e-12
    )


def test_per_period_rate_compounds_back_to_the_annual_rate():
    assert per_period_rate(0.03, 365.0) == pytest.approx(1.03 ** (1 / 365) - 1, rel=1e-12)
    assert (1 + per_period_rate(0.03, 8760.0)) ** 8760 == pytest.approx(1.03, rel=1e-12)


def test_moments_are_population_skewness_and_excess_kurtosis():
    r = [0.0, 0.0, 0.0, 1.0]  # mean 0.25; deviations -0.25 x3, 0.75
    m2 = (3 * 0.25**2 + 0.75**2) / 4
    m3 = (3 * -(0.25**3) + 0.75**3) / 4
    m4 = (3 * 0.25**4 + 0.75**4) / 4

    skew, kurt = moments(r)

    assert skew == pytest.approx(m3 / m2**1.5, rel=1e-12)
    assert kurt == pytest.approx(m4 / m2**2 - 3.0, rel=1e-12)


def test_probabilistic_sharpe_matches_its_formula_worked_by_hand():
    # SR 0.1 per period over 101 returns, skew -1, excess kurtosis 2 (Pearson 5):
    # z = 0.1 * sqrt(100) / sqrt(1 + 0.1 + (5 - 1) / 4 * 0.01) = 1 / sqrt(1.11)
    expected = norm.cdf(1.0 / math.sqrt(1.11))

    assert probabilistic_sharpe_ratio(0.1, 101, -1.0, 2.0) == pytest.approx(expected, rel=1e-12)


def test_deflated_sharpe_reproduces_bailey_lopez_de_prado_2014_example():
    # 100 trials, annual SR 2.5 over 5 years of daily returns (T = 1250), variance of the
    # trials' annual Sharpes 0.5, skew -3, kurtosis 10: the paper gives SR0 = 0.1132
    # (per day) and DSR = 0.9004.
    daily_var = 0.5 / 250

    assert expected_max_sharpe(100, daily_var) == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe_ratio(2.5 / math.sqrt(250), 1250, 100, daily_var, -3.0, 7.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_expected_max_sharpe_is_zero_for_one_trial_and_rejects_none():
    assert expected_max_sharpe(1, 0.3) == 0.0
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0, 0.3)


def test_deflated_sharpe_defaults_to_the_zero_skill_sharpe_variance():
    sr0 = math.sqrt(1 / 99) * (
        (1 - 0.5772156649015329) * norm.ppf(1 - 1 / 20)
        + 0.5772156649015329 * norm.ppf(1 - 1 / (20 * math.e))
    )

    assert deflated_sharpe_ratio(0.3, 100, 20) == pytest.approx(
        norm.cdf((0.3 - sr0) * math.sqrt(99) / math.sqrt(1 + 0.5 * 0.09)), rel=1e-12
    )


def test_deflated_sharpe_with_one_trial_is_the_probabilistic_sharpe():
    assert deflated_sharpe_ratio(0.05, 500, 1, 0.01, 0.2, 1.0) == pytest.approx(
        probabilistic_sharpe_ratio(0.05, 500, 0.2, 1.0), rel=1e-15
    )


@given(st.integers(1, 10_000), st.integers(1, 10_000))
def test_deflated_sharpe_falls_as_the_number_of_trials_grows(a, b):
    few, many = sorted((a, b))

    assert deflated_sharpe_ratio(0.1, 252, many, 0.002) <= deflated_sharpe_ratio(
        0.1, 252, few, 0.002
    )


@given(st.floats(0.001, 1.0), st.integers(2, 100_000), st.integers(1, 100_000))
def test_probabilistic_sharpe_grows_with_track_length_for_a_positive_sharpe(sr, n, extra):
    assert probabilistic_sharpe_ratio(sr, n + extra) >= probabilistic_sharpe_ratio(sr, n)


def test_probabilistic_sharpe_is_one_half_at_the_benchmark():
    assert probabilistic_sharpe_ratio(0.2, 50, -0.5, 3.0, benchmark=0.2) == 0.5


@pytest.mark.parametrize("returns", [[0.0] * 10, [0.01] * 10, [0.003]])
def test_zero_volatility_or_too_short_series_give_nan_without_warnings(returns):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = [sharpe_ratio(returns, 0.0, 365.0), *moments(returns)]
        values.append(sortino_ratio(returns, 0.001, 365.0))  # trails rf steadily: no risk
        values.append(probabilistic_sharpe_ratio(values[0], len(returns)))
        values.append(deflated_sharpe_ratio(values[0], len(returns), 10))

    assert all(math.isnan(v) for v in values)


def test_constant_growth_curve_has_no_sharpe_despite_float_noise():
    equity = 100.0 * 1.001 ** np.arange(50)

    assert np.std(step_returns(equity)) > 0.0  # the float noise the tolerance absorbs
    assert math.isnan(sharpe_ratio(step_returns(equity), 0.0, 365.0))


def test_non_finite_returns_are_rejected():
    with pytest.raises(ValueError, match="NaN or inf"):
        sharpe_ratio([0.01, math.nan, 0.02])


def test_max_drawdown_of_a_hand_made_curve():
    equity = [100, 120, 90, 96, 130, 117, 125]  # falls 25% from 120, then 10% from 130

    depth, duration, peak, trough = max_drawdown(equity)

    assert depth == pytest.approx(1 - 90 / 120, rel=1e-12)
    assert (peak, trough) == (1, 2)
    assert duration == 3  # under water from step 1 (120) until step 4 (130)
    assert longest_underwater(equity) == (1, 4)


def test_unrecovered_drawdown_lasts_until_the_last_step():
    assert longest_underwater([100, 110, 105, 108]) == (1, 3)
    assert max_drawdown([100, 50, 0])[:2] == (1.0, 2)


def test_equity_reaching_zero_before_the_end_has_undefined_returns():
    with pytest.raises(ValueError, match="zero before the last step"):
        step_returns([100.0, 0.0, 10.0])
    with pytest.raises(ValueError, match="start above zero"):
        max_drawdown([0.0, 1.0])


equity_curves = st.lists(st.floats(1e-3, 1e6), min_size=1, max_size=60)


@given(equity_curves)
def test_max_drawdown_is_a_fraction_between_its_peak_and_trough(equity):
    depth, duration, peak, trough = max_drawdown(equity)

    assert 0.0 <= depth <= 1.0
    assert 0 <= peak <= trough < len(equity)
    assert 0 <= duration < len(equity)
    assert depth == pytest.approx(1 - equity[trough] / equity[peak], abs=1e-12)
    assert equity[peak] == max(equity[: trough + 1])


@given(equity_curves)
def test_monotone_equity_has_no_drawdown(equity):
    assert max_drawdown(sorted(equity)) == (0.0, 0, 0, 0)
