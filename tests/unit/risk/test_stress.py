"""Stress tests: margin that matches the simulator, stored scenarios, golden shocks, linearity."""

import json

import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.config import MarginConfig
from envs.core.accounting import bracket_arrays
from envs.core.accounting import maintenance_margin as env_maintenance
from risk.liquidity import MarketLiquidity
from risk.stress import (
    DEFAULT_BRACKETS,
    SCENARIO_FILE,
    PortfolioSnapshot,
    Scenario,
    betas_from_returns,
    bracket_allowances,
    hypothetical_scenarios,
    load_scenarios,
    maintenance_margin,
    position_maintenance,
    run_stress,
    stress_test,
)

EQUITY = 1_000_000.0


def book(btc=0.0, eth=0.0, sol=0.0, equity=EQUITY):
    return PortfolioSnapshot(
        positions={"BTC": btc, "ETH": eth, "SOL": sol},
        marks={"BTC": 50_000.0, "ETH": 2_500.0, "SOL": 100.0},
        equity=equity,
    )


def shock(name="drop", **fields):
    return Scenario(name=name, kind="hypothetical", **fields)


def test_default_brackets_and_allowances_are_the_simulators():
    config = MarginConfig()

    assert config.brackets == DEFAULT_BRACKETS
    np.testing.assert_allclose(bracket_allowances(DEFAULT_BRACKETS), config.allowances())


def test_position_margin_matches_the_simulator_on_and_between_bracket_floors():
    floors, rates, allowances = (row[0] for row in bracket_arrays(MarginConfig(), ["ANY"]))
    rng = np.random.default_rng(0)
    notionals = np.r_[floors, floors[1:] - 0.01, rng.uniform(0, 4e8, 200)]

    ours = position_maintenance(notionals)

    theirs = [env_maintenance(n, floors, rates, allowances) for n in notionals]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_each_asset_is_margined_and_stressed_on_its_own_table_as_the_simulator_does():
    margin = MarginConfig()
    assets = ["BTC", "SOL", "DOGE"]  # DOGE has no table of its own: the default one
    marks = {"BTC": 30_000.0, "SOL": 25.0, "DOGE": 0.07}
    notional = {"BTC": 4_000_000.0, "SOL": -4_000_000.0, "DOGE": 600_000.0}
    snapshot = PortfolioSnapshot(
        positions={a: notional[a] / marks[a] for a in assets}, marks=marks, equity=2e6,
        brackets=margin.brackets, asset_brackets={a: margin.table(a) for a in assets})
    arrays = bracket_arrays(margin, assets)
    crash = Scenario(name="crash", shocks={"default": -0.2})

    ours = snapshot.position_maintenance(notional)
    stressed = run_stress(snapshot, [crash]).loc["crash"]

    theirs = [env_maintenance(abs(notional[a]), *(row[k] for row in arrays))
              for k, a in enumerate(assets)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[0] != ours[1]  # same size, different tiers
    assert snapshot.maintenance() == pytest.approx(sum(theirs))
    shocked = [env_maintenance(abs(notional[a]) * 0.8, *(row[k] for row in arrays))
               for k, a in enumerate(assets)]
    assert stressed["maintenance_after"] == pytest.approx(sum(shocked))


def test_a_malformed_asset_table_is_refused_naming_the_asset():
    with pytest.raises(pydantic.ValidationError, match="SOL"):
        PortfolioSnapshot(positions={}, marks={}, equity=1.0,
                          asset_brackets={"SOL": ((0.0, 0.01), (10.0, 0.005))})


def test_margin_is_continuous_where_a_position_enters_a_higher_bracket():
    floors = np.array([f for f, _ in DEFAULT_BRACKETS[1:]])

    below, at = position_maintenance(floors - 1e-6), position_maintenance(floors)

    np.testing.assert_allclose(below, at, atol=1e-4)


def test_maintenance_margin_sums_positions_by_absolute_notional():
    total = maintenance_margin({"BTC": -1_200_000.0, "ETH": 300_000.0})

    assert total == pytest.approx((1_200_000 * 0.01 - 2_550) + (300_000 * 0.005 - 50))


def test_stored_scenarios_cover_the_named_crashes_and_say_they_are_approximate():
    note = json.loads(SCENARIO_FILE.read_text())["note"]

    scenarios = {s.name: s for s in load_scenarios()}

    assert "APPROXIMATE" in note
    assert {s.date for s in scenarios.values()} >= {
        "2020-03-12",
        "2021-05-19",
        "2022-05-09/2022-05-12",
        "2022-11-08/2022-11-09",
    }
    for s in scenarios.values():
        assert {"BTC", "ETH", "SOL", "default"} <= set(s.shocks)
        assert all(-1 < x < 0 for x in s.shocks.values())
        assert "pproximate" in s.description


def test_covid_crash_on_a_2x_long_btc_book_loses_78_percent_but_survives():
    snapshot = book(btc=40.0)
    covid = next(s for s in load_scenarios() if s.date == "2020-03-12")

    result = stress_test(snapshot, covid)

    assert result.pnl == pytest.approx(-0.39 * 2_000_000)
    assert result.equity_after == pytest.approx(220_000)
    assert result.maintenance_after == pytest.approx(1_220_000 * 0.01 - 2_550)
    assert result.margin_ratio == pytest.approx(result.maintenance_after / 220_000)
    assert not result.liquidated


def test_covid_crash_liquidates_a_3x_long_btc_book():
    result = stress_test(book(btc=60.0), next(iter(load_scenarios())))

    assert result.equity_after < 0
    assert result.liquidated


def test_a_crash_pays_a_short_book():
    result = stress_test(book(eth=-400.0), shock(shocks={"default": -0.2}))

    assert result.pnl == pytest.approx(0.2 * 1_000_000)


def test_correlated_btc_crash_moves_other_assets_by_their_beta():
    crash = next(s for s in hypothetical_scenarios(betas={"ETH": 1.1}) if "btc" in s.name)

    shocks = {a: crash.price_shock(a) for a in ("BTC", "ETH", "SOL", "DOGE")}

    assert shocks == pytest.approx({"BTC": -0.30, "ETH": -0.33, "SOL": -0.45, "DOGE": -0.39})


def test_betas_are_recovered_from_returns():
    rng = np.random.default_rng(1)
    btc = rng.normal(0, 0.02, 20_000)
    returns = pd.DataFrame({"BTC": btc, "ETH": 1.3 * btc + rng.normal(0, 0.01, btc.size)})

    betas = betas_from_returns(returns)

    assert betas["BTC"] == pytest.approx(1.0)
    assert betas["ETH"] == pytest.approx(1.3, abs=0.02)


@pytest.mark.parametrize(("qty", "sign"), [(20.0, -1), (-20.0, 1)])
def test_funding_spike_charges_longs_and_pays_shorts(qty, sign):
    spike = next(s for s in hypothetical_scenarios() if s.name == "funding_spike_longs_pay")

    result = stress_test(book(btc=qty), spike)

    assert result.funding_pnl == pytest.approx(sign * 1_000_000 * 0.003 * 9)


def test_volatility_spike_moves_every_asset_against_its_position():
    spike = next(s for s in hypothetical_scenarios() if s.name == "volatility_spike")
    liquidity = MarketLiquidity(default_daily_vol=0.05)

    long_result = stress_test(book(btc=10.0), spike, liquidity)
    short_result = stress_test(book(btc=-10.0), spike, liquidity)

    assert long_result.pnl == pytest.approx(short_result.pnl)
    assert long_result.pnl == pytest.approx(-500_000 * spike.adverse_sigma * 3 * 0.05)


def test_liquidity_crunch_keeps_prices_but_raises_the_closeout_cost():
    crunch = next(s for s in hypothetical_scenarios() if s.name == "liquidity_crunch")
    liquidity = MarketLiquidity(half_spread={"BTC": 1e-4}, daily_notional={"BTC": 1e9})
    normal = stress_test(book(btc=20.0), shock(), liquidity)

    result = stress_test(book(btc=20.0), crunch, liquidity)

    n = 1_000_000
    expected = n * 1e-4 * 10 + n * 0.5 * 0.04 * np.sqrt(n / (1e9 * 0.2))
    assert result.pnl == 0
    assert result.closeout_cost == pytest.approx(expected)
    assert result.closeout_cost > 3 * normal.closeout_cost
    assert result.equity_after_closeout == pytest.approx(EQUITY - expected)


def test_run_stress_reports_every_default_scenario():
    table = run_stress(book(btc=10.0, eth=-100.0, sol=500.0))

    assert len(table) == len(load_scenarios()) + len(hypothetical_scenarios())
    assert {"pnl", "equity_after", "margin_ratio", "liquidated"} <= set(table.columns)
    assert (table["equity_after"] == EQUITY + table["pnl"]).all()


@settings(max_examples=40, deadline=None)
@given(
    qty=st.tuples(*[st.floats(-1_000, 1_000, allow_subnormal=False)] * 3),
    factor=st.floats(0.01, 10.0),
)
def test_stress_pnl_is_linear_in_position_size(qty, factor):
    base = run_stress(book(*qty))

    scaled = run_stress(book(*(q * factor for q in qty)))

    np.testing.assert_allclose(scaled["pnl"], factor * base["pnl"], rtol=1e-9, atol=1e-6)


def test_snapshot_rejects_positions_without_marks_and_is_frozen():
    with pytest.raises(pydantic.ValidationError, match="no mark price"):
        PortfolioSnapshot(positions={"BTC": 1.0}, marks={}, equity=1.0)
    with pytest.raises(pydantic.ValidationError):
        PortfolioSnapshot(positions={}, marks={}, equity=1.0, wallet=2.0)
    snapshot = book(btc=1.0)
    with pytest.raises(pydantic.ValidationError):
        snapshot.equity = 5.0


def test_snapshot_exposures_and_leverage():
    snapshot = book(btc=20.0, eth=-200.0)

    assert snapshot.gross_exposure == pytest.approx(1_500_000)
    assert snapshot.net_exposure == pytest.approx(500_000)
    assert snapshot.leverage == pytest.approx(1.5)
    assert snapshot.weights()["ETH"] == pytest.approx(-0.5)


def test_impossible_shocks_are_rejected():
    with pytest.raises(pydantic.ValidationError, match="-100%"):
        shock(shocks={"BTC": -1.2})
