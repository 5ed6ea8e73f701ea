"""Liquidity costs follow the square-root law; counterparty exposure adds up per exchange."""

import math

import numpy as np
import pandas as pd
import pytest

from risk.liquidity import (
    DEFAULT_EXCHANGE,
    MarketLiquidity,
    corwin_schultz_half_spread,
    counterparty_exposure,
    days_to_liquidate,
    estimate_liquidity,
    impact_cost,
    liquidity_table,
)


def test_impact_follows_the_square_root_law():
    cost = impact_cost(1_000_000, 0.04, 100_000_000, k=0.5)

    assert cost == pytest.approx(1_000_000 * 0.5 * 0.04 * math.sqrt(0.01))
    assert impact_cost(4_000_000, 0.04, 1e8) == pytest.approx(8 * cost)


def test_days_to_liquidate_at_a_participation_rate():
    assert days_to_liquidate(5e7, 1e8, participation=0.1) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="participation"):
        days_to_liquidate(1.0, 1.0, participation=0.0)


def test_liquidity_table_prices_an_immediate_exit_under_stress_multipliers():
    liquidity = MarketLiquidity(
        half_spread={"BTC": 1e-4}, daily_notional={"BTC": 1e9}, daily_vol={"BTC": 0.03}
    )

    table = liquidity_table(
        {"BTC": -2e7, "DOGE": 1e6},
        liquidity,
        spread_multiplier=2.0,
        volume_multiplier=0.5,
        vol_multiplier=2.0,
    )

    btc = table.loc["BTC"]
    assert btc["notional"] == 2e7
    assert btc["spread_cost"] == pytest.approx(2e7 * 1e-4 * 2)
    assert btc["impact_cost"] == pytest.approx(2e7 * 0.5 * 0.06 * math.sqrt(2e7 / 5e8))
    assert btc["days_to_liquidate"] == pytest.approx(2e7 / (0.1 * 5e8))
    assert table.loc["DOGE", "daily_notional"] == pytest.approx(
        0.5 * liquidity.default_daily_notional
    )
    assert (table["total_cost"] == table["spread_cost"] + table["impact_cost"]).all()


def test_corwin_schultz_recovers_a_known_spread_and_grows_with_it():
    rng = np.random.default_rng(0)
    mid = 100 * np.exp(np.cumsum(rng.normal(0, 0.0002, 3_000 * 60))).reshape(3_000, 60)

    def estimate(spread):
        high, low = mid.max(axis=1) * (1 + spread / 2), mid.min(axis=1) * (1 - spread / 2)
        return corwin_schultz_half_spread(pd.Series(high), pd.Series(low))

    assert estimate(0.005) == pytest.approx(0.0025, rel=0.1)
    assert estimate(0.0) < estimate(0.002) < estimate(0.005)


def test_liquidity_is_estimated_from_the_trailing_bars_only():
    bars_per_day, days = 24, 60
    rng = np.random.default_rng(1)
    close = pd.DataFrame({"BTC": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars_per_day * days)))})
    volume = pd.DataFrame({"BTC": np.r_[np.full(30 * 24, 1e6), np.full(30 * 24, 10.0)]})

    liquidity = estimate_liquidity(close, volume, bars_per_day, lookback_days=30)

    recent = close["BTC"].tail(30 * 24)
    assert liquidity.daily_notional["BTC"] == pytest.approx((recent * 10.0).mean() * 24)
    assert liquidity.daily_vol["BTC"] == pytest.approx(0.01 * math.sqrt(24), rel=0.1)


def test_counterparty_exposure_uses_stated_equity_per_exchange():
    table = counterparty_exposure(
        {"BTC": 3e6, "ETH": -1e6},
        {"BTC": "binance", "ETH": "bybit"},
        equity=1e6,
        exchange_equity={"binance": 7e5, "bybit": 3e5},
        maintenance={"BTC": 2e4, "ETH": 5e3},
        max_share=0.6,
    )

    assert table.loc["binance", "share"] == pytest.approx(0.7)
    assert table.loc["bybit", "gross_notional"] == pytest.approx(1e6)
    assert table.loc["bybit", "maintenance_margin"] == pytest.approx(5e3)
    assert table["breach"].to_dict() == {"binance": True, "bybit": False}


def test_counterparty_equity_follows_notional_when_not_stated():
    table = counterparty_exposure({"BTC": 3e6, "ETH": 1e6}, {"ETH": "okx"}, equity=1e6)

    assert table.loc[DEFAULT_EXCHANGE, "equity_held"] == pytest.approx(7.5e5)
    assert table.loc["okx", "share"] == pytest.approx(0.25)


def test_a_flat_book_holds_all_equity_at_the_default_exchange():
    table = counterparty_exposure({}, {}, equity=1e6)

    assert table.loc[DEFAULT_EXCHANGE, "share"] == 1.0
