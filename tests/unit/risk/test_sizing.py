"""Position sizing rules: each shrinks or caps exposure as stated, never flips a signal."""

import math

import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.sizing import (
    CorrelationConfig,
    DrawdownSchedule,
    EquityRiskConfig,
    SizingConfig,
    VolTargetConfig,
    annualised_vol,
    cap_correlated_exposure,
    correlated_groups,
    drawdown,
    drawdown_multiplier,
    regime_multiplier,
    risk_fraction_notional,
    size_positions,
    vol_target_leverage,
)

ASSETS = ["BTC", "ETH", "SOL"]
CORR = pd.DataFrame(
    [[1.0, 0.85, 0.6], [0.85, 1.0, 0.75], [0.6, 0.75, 1.0]], index=ASSETS, columns=ASSETS
)


def test_vol_targeting_scales_inversely_with_volatility_and_caps_calm_assets():
    vols = pd.Series({"BTC": 1.0, "ETH": 0.5, "SOL": 0.05, "NEW": np.nan})

    lev = vol_target_leverage(vols, VolTargetConfig(target_vol=0.5, max_leverage=3.0))

    assert lev.to_dict() == {"BTC": 0.5, "ETH": 1.0, "SOL": 3.0, "NEW": 0.0}


def test_annualised_vol_scales_per_bar_std_by_sqrt_bars_per_year():
    returns = pd.Series(np.random.default_rng(0).normal(0, 0.001, 1_000))

    vol = annualised_vol(returns, 288 * 365)

    assert vol == pytest.approx(returns.std() * math.sqrt(288 * 365))


def test_equity_risk_sizing_loses_the_risk_fraction_at_the_stop():
    notional = risk_fraction_notional(1_000_000, 0.02, EquityRiskConfig(risk_fraction=0.01))

    assert notional == pytest.approx(500_000)
    assert notional * 0.02 == pytest.approx(0.01 * 1_000_000)


def test_equity_risk_sizing_is_capped_by_leverage_and_rejects_zero_stops():
    config = EquityRiskConfig(risk_fraction=0.05, max_leverage=2.0)

    assert risk_fraction_notional(1_000, 0.001, config) == pytest.approx(2_000)
    with pytest.raises(ValueError, match="stop_distance"):
        risk_fraction_notional(1_000, 0.0, config)


@pytest.mark.parametrize(
    ("threshold", "groups"),
    [
        (0.7, [["BTC", "ETH", "SOL"]]),
        (0.8, [["BTC", "ETH"], ["SOL"]]),
        (0.9, [["BTC"], ["ETH"], ["SOL"]]),
    ],
)
def test_correlated_groups_link_assets_above_the_threshold(threshold, groups):
    assert correlated_groups(CORR, threshold) == groups


def test_a_correlated_group_over_its_cap_is_scaled_down_proportionally():
    weights = pd.Series({"BTC": 8.0, "ETH": -6.0, "SOL": 3.0})
    config = CorrelationConfig(threshold=0.8, max_group_exposure=7.0)

    capped = cap_correlated_exposure(weights, CORR, config)

    assert capped.to_dict() == pytest.approx({"BTC": 4.0, "ETH": -3.0, "SOL": 3.0})


@settings(max_examples=60, deadline=None)
@given(
    w=st.tuples(*[st.floats(-20, 20, allow_subnormal=False)] * 3),
    cap=st.floats(0.5, 30),
    threshold=st.floats(0.5, 0.95),
)
def test_correlation_caps_never_grow_or_flip_a_position(w, cap, threshold):
    weights = pd.Series(w, index=ASSETS)
    config = CorrelationConfig(threshold=threshold, max_group_exposure=cap)

    capped = cap_correlated_exposure(weights, CORR, config)

    assert (capped.abs() <= weights.abs() + 1e-12).all()
    assert (np.sign(capped) * np.sign(weights) >= 0).all()
    for group in correlated_groups(CORR, threshold):
        assert capped[group].abs().sum() <= cap * (1 + 1e-9)


def test_regime_multiplier_multiplies_the_parts_of_a_combined_label():
    labels = pd.Series(["high_vol/sideways", "low_vol/uptrend"])

    assert regime_multiplier("high_vol/sideways") == pytest.approx(0.375)
    assert regime_multiplier(labels).tolist() == pytest.approx([0.375, 1.0])


def test_an_unconfigured_regime_is_an_error_not_full_size():
    with pytest.raises(ValueError, match="crab_market"):
        regime_multiplier("high_vol/crab_market")


def test_drawdown_steps_cut_exposure_at_each_threshold():
    dd = np.array([0.0, 0.05, 0.10, 0.15, 0.20, 0.29, 0.30, 0.9])

    mult = drawdown_multiplier(dd)

    np.testing.assert_allclose(mult, [1, 1, 0.75, 0.75, 0.5, 0.5, 0.0, 0.0])
    assert drawdown_multiplier(0.12) == 0.75


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0, 1), b=st.floats(0, 1))
def test_deeper_drawdowns_never_allow_more_exposure(a, b):
    low, high = sorted((a, b))

    assert drawdown_multiplier(high) <= drawdown_multiplier(low)


def test_drawdown_is_measured_from_the_running_peak():
    np.testing.assert_allclose(drawdown([100, 120, 90, 130, 65]), [0, 0, 0.25, 0, 0.5])


def test_a_schedule_that_raises_exposure_deeper_in_drawdown_is_rejected():
    with pytest.raises(pydantic.ValidationError, match="non-increasing"):
        DrawdownSchedule(steps=((0.1, 0.5), (0.2, 0.8)))


def test_size_positions_applies_every_rule_and_the_gross_cap():
    signals = pd.Series({"BTC": 1.0, "ETH": -1.0, "SOL": 0.5})
    vols = pd.Series({"BTC": 0.25, "ETH": 0.5, "SOL": 1.0})
    config = SizingConfig(
        vol_target=VolTargetConfig(target_vol=0.5, max_leverage=5.0),
        correlation=CorrelationConfig(threshold=0.8, max_group_exposure=2.0),
        max_gross_leverage=2.0,
    )

    weights = size_positions(
        signals, vols, config, corr=CORR, regime="high_vol/uptrend", current_drawdown=0.12
    )

    # vol target 2, -1, 0.25; x0.75 drawdown x0.5 regime -> 0.75, -0.375, 0.09375;
    # BTC+ETH gross 1.125 < 2 stays; book gross 1.21875 < 2 stays
    assert weights.to_dict() == pytest.approx({"BTC": 0.75, "ETH": -0.375, "SOL": 0.09375})


def test_size_positions_scales_the_book_to_the_gross_cap():
    signals = pd.Series({"BTC": 1.0, "ETH": 1.0})
    vols = pd.Series({"BTC": 0.1, "ETH": 0.1})

    weights = size_positions(signals, vols, SizingConfig(max_gross_leverage=4.0))

    assert weights.abs().sum() == pytest.approx(4.0)
    assert weights["BTC"] == pytest.approx(weights["ETH"])
