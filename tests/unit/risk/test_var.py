"""VaR and ES against known distributions, closed forms, and properties every estimator keeps."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import integrate, stats

from risk.var import (
    METHODS,
    expected_shortfall,
    horizon_returns,
    portfolio_es,
    portfolio_var,
    risk_contributions,
    value_at_risk,
    var_table,
)

MU, SIGMA, N = 0.001, 0.02, 200_000


@pytest.fixture(scope="module")
def normal_returns():
    return np.random.default_rng(7).normal(MU, SIGMA, N)


@pytest.fixture(scope="module")
def asset_returns():
    cov = [[4e-4, 3e-4, 2e-4], [3e-4, 9e-4, 3e-4], [2e-4, 3e-4, 16e-4]]
    draws = np.random.default_rng(11).multivariate_normal([0.0005, 0.0, -0.0005], cov, 5_000)
    return pd.DataFrame(draws, columns=["BTC", "ETH", "SOL"])


def closed_form(confidence, mu=MU, sigma=SIGMA):
    z = stats.norm.ppf(confidence)
    return -mu + sigma * z, -mu + sigma * stats.norm.pdf(z) / (1 - confidence)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_historical_var_and_es_of_normal_returns_match_closed_form(normal_returns, confidence):
    var_true, es_true = closed_form(confidence)

    var = value_at_risk(normal_returns, confidence)
    es = expected_shortfall(normal_returns, confidence)

    assert var == pytest.approx(var_true, rel=0.02)
    assert es == pytest.approx(es_true, rel=0.02)


def test_parametric_var_and_es_are_the_normal_formulas_on_sample_moments(normal_returns):
    mu, sigma = normal_returns.mean(), normal_returns.std(ddof=1)
    var_true, es_true = closed_form(0.99, mu, sigma)

    var = value_at_risk(normal_returns, 0.99, method="parametric")
    es = expected_shortfall(normal_returns, 0.99, method="parametric")

    assert var == pytest.approx(var_true, rel=1e-12)
    assert es == pytest.approx(es_true, rel=1e-12)


def test_parametric_horizon_scales_mean_by_h_and_sigma_by_sqrt_h(normal_returns):
    mu, sigma, h = normal_returns.mean(), normal_returns.std(ddof=1), 10

    var = value_at_risk(normal_returns, 0.99, horizon=h, method="parametric")

    assert var == pytest.approx(-mu * h + sigma * np.sqrt(h) * stats.norm.ppf(0.99), rel=1e-12)


def test_horizon_returns_compound_overlapping_windows():
    returns = np.array([0.10, -0.10, 0.20])

    out = horizon_returns(returns, 2)

    np.testing.assert_allclose(out, [1.1 * 0.9 - 1, 0.9 * 1.2 - 1])


def test_historical_horizon_var_is_the_quantile_of_compounded_returns(normal_returns):
    compounded = horizon_returns(normal_returns, 5)

    var = value_at_risk(normal_returns, 0.95, horizon=5)

    assert var == pytest.approx(-np.quantile(compounded, 0.05))
    assert var == pytest.approx(closed_form(0.95, 5 * MU, SIGMA * np.sqrt(5))[0], rel=0.03)


@pytest.mark.parametrize(
    ("dist", "confidence"),
    [
        (stats.skewnorm(-6, scale=0.02), 0.99),
        (stats.t(12, scale=0.01), 0.99),
        (stats.skewnorm(-6, scale=0.02), 0.95),
    ],
    ids=["skewed_99", "student_t12_99", "skewed_95"],
)
def test_cornish_fisher_beats_normal_on_skewed_and_fat_tailed_returns(dist, confidence):
    """Cases where the expansion is valid; each held on 20 of 20 seeds tried."""
    sample = dist.rvs(100_000, random_state=3)
    alpha = 1 - confidence
    true_var = -dist.ppf(alpha)
    true_es = -dist.expect(lambda x: x, ub=dist.ppf(alpha)) / alpha

    errors = {
        m: (
            abs(value_at_risk(sample, confidence, method=m) - true_var),
            abs(expected_shortfall(sample, confidence, method=m) - true_es),
        )
        for m in ("parametric", "cornish_fisher")
    }

    assert errors["cornish_fisher"][0] < errors["parametric"][0]
    assert errors["cornish_fisher"][1] < errors["parametric"][1]


def test_cornish_fisher_es_is_the_tail_integral_of_the_cornish_fisher_quantile():
    sample = stats.skewnorm(-4, scale=0.02).rvs(20_000, random_state=5)
    mu, sigma = sample.mean(), sample.std(ddof=1)
    s, k = stats.skew(sample, bias=False), stats.kurtosis(sample, bias=False)

    def quantile(p):
        z = stats.norm.ppf(p)
        return z + s / 6 * (z**2 - 1) + k / 24 * (z**3 - 3 * z) - s**2 / 36 * (2 * z**3 - 5 * z)

    tail = integrate.quad(quantile, 0, 0.01, limit=200)[0] / 0.01

    es = expected_shortfall(sample, 0.99, method="cornish_fisher")

    assert es == pytest.approx(-(mu + sigma * tail), rel=1e-6)
    assert value_at_risk(sample, 0.99, method="cornish_fisher") == pytest.approx(
        -(mu + sigma * quantile(0.01)), rel=1e-9
    )


@pytest.mark.parametrize(
    ("returns", "kwargs", "match"),
    [
        (np.zeros(10), {}, "at least"),
        (np.zeros(50), {"confidence": 0.99}, "at least 100"),
        (np.r_[np.zeros(200), np.nan], {}, "NaN"),
        (np.zeros(200), {"confidence": 1.0}, r"\(0, 1\)"),
        (np.zeros(200), {"confidence": 0.0}, r"\(0, 1\)"),
        (np.zeros(200), {"method": "garch"}, "method"),
        (np.zeros(200), {"horizon": 0}, "horizon"),
        (np.zeros((200, 2)), {}, "1-D"),
        (np.r_[np.zeros(200), -1.5], {}, "below -1"),
    ],
)
def test_bad_inputs_raise_clear_value_errors(returns, kwargs, match):
    with pytest.raises(ValueError, match=match):
        value_at_risk(returns, **kwargs)


SAMPLES = arrays(
    np.float64,
    st.integers(100, 300),
    elements=st.floats(-0.5, 0.5, allow_nan=False, allow_subnormal=False),
)


@settings(max_examples=60, deadline=None)
@given(
    returns=SAMPLES,
    confidence=st.floats(0.5, 0.99),
    method=st.sampled_from(["historical", "parametric"]),
)
def test_es_is_never_below_var(returns, confidence, method):
    var = value_at_risk(returns, confidence, method=method)

    es = expected_shortfall(returns, confidence, method=method)

    assert es >= var - 1e-12


@settings(max_examples=60, deadline=None)
@given(
    returns=SAMPLES,
    levels=st.tuples(st.floats(0.5, 0.99), st.floats(0.5, 0.99)).map(sorted),
    method=st.sampled_from(["historical", "parametric"]),
)
def test_var_and_es_do_not_fall_as_confidence_rises(returns, levels, method):
    low, high = levels

    var_low, var_high = (value_at_risk(returns, c, method=method) for c in (low, high))
    es_low, es_high = (expected_shortfall(returns, c, method=method) for c in (low, high))

    assert var_high >= var_low - 1e-12
    assert es_high >= es_low - 1e-12


@settings(max_examples=40, deadline=None)
@given(returns=SAMPLES, shift=st.floats(-0.1, 0.1), method=st.sampled_from(METHODS))
@example(returns=np.full(100, 6.49657538e-70), shift=0.0, method="cornish_fisher")
def test_adding_a_sure_gain_lowers_one_period_var_by_exactly_that_gain(returns, shift, method):
    base = value_at_risk(returns, 0.95, method=method)

    shifted = value_at_risk(returns + shift, 0.95, method=method)

    assert shifted == pytest.approx(base - shift, abs=1e-9)


def test_var_table_has_one_row_per_method_confidence_and_horizon(normal_returns):
    table = var_table(normal_returns[:2_000], confidences=(0.95, 0.99), horizons=(1, 5))

    assert len(table) == len(METHODS) * 2 * 2
    row = table.query("method == 'cornish_fisher' and confidence == 0.99 and horizon == 5")
    expected = value_at_risk(normal_returns[:2_000], 0.99, 5, "cornish_fisher")
    assert row["var"].item() == pytest.approx(expected)
    assert (table["es"] >= table["var"]).all()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("horizon", [1, 5])
def test_portfolio_of_one_asset_equals_that_assets_var(asset_returns, method, horizon):
    expected = value_at_risk(asset_returns["ETH"], 0.99, horizon, method)

    var = portfolio_var(asset_returns, {"ETH": 1.0}, 0.99, horizon, method)

    assert var == pytest.approx(expected, rel=1e-9)


def test_historical_portfolio_horizon_is_buy_and_hold(asset_returns):
    weights = np.array([2.0, -1.0, 0.5])
    held = horizon_returns(asset_returns.to_numpy(), 10) @ weights

    var = portfolio_var(asset_returns, weights, 0.95, horizon=10)

    assert var == pytest.approx(-np.quantile(held, 0.05))


def test_parametric_portfolio_var_uses_the_covariance_of_the_weights(asset_returns):
    w = np.array([1.0, 0.5, -0.5])
    x = asset_returns.to_numpy()
    sigma = np.sqrt(w @ np.cov(x, rowvar=False) @ w)

    var = portfolio_var(asset_returns, w, 0.99, method="parametric")

    assert var == pytest.approx(-(x.mean(axis=0) @ w) + sigma * stats.norm.ppf(0.99), rel=1e-9)


@pytest.mark.parametrize(
    ("method", "total"),
    [("parametric", portfolio_var), ("historical", portfolio_es)],
)
def test_component_risks_sum_to_the_portfolio_figure(asset_returns, method, total):
    weights = {"BTC": 1.5, "ETH": -0.5, "SOL": 0.8}

    parts = risk_contributions(asset_returns, weights, 0.99, horizon=1, method=method)

    expected = total(asset_returns, weights, 0.99, method=method)
    assert parts["component"].sum() == pytest.approx(expected, rel=1e-9)
    assert parts.attrs["total"] == pytest.approx(expected, rel=1e-9)
    assert parts["share"].sum() == pytest.approx(1.0)


def test_weights_for_assets_without_history_are_rejected(asset_returns):
    with pytest.raises(ValueError, match="DOGE"):
        portfolio_var(asset_returns, {"BTC": 1.0, "DOGE": 0.5})
