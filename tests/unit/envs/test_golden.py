"""Golden values worked by hand: the simulator without any RL framework.

Default setting unless a test says otherwise: one asset at 100, equity 1,000,000,
max leverage 20 and concentration 1 (so size 0.125 -> 2,500,000 notional ->
25,000 units), taker fee 0.04%, maker 0.02%, half-spread 1 bp, no impact
(infinite daily notional), stops 50 ATR away (ATR 100 -> never hit).
"""

import dataclasses
import math

import numpy as np
import pytest

from envs.config import CostConfig, EnvConfig, ExecStyle, ExecutionConfig
from envs.core.layout import (
    M_CLOSE,
    M_FUNDING_LAST,
    M_HIGH,
    M_LOW,
    M_MARK,
    M_OPEN,
)
from envs.ledger import reconcile
from envs.single import PerpetualEnv
from risk.limits import RiskLimits
from tests.unit.envs.market import action, add_funding, flat_market

INITIAL = 1_000_000.0


def make_env(data, bars_per_step=1, **limits):
    limits = {"max_drawdown": 1.0, "max_concentration": 1.0, **limits}
    config = EnvConfig(
        window=4, risk_window=3, bars_per_step=bars_per_step, limits=RiskLimits(**limits)
    )
    env = PerpetualEnv(data, config)
    env.reset(seed=0, options={"start": 10})
    return env


def assert_reconciles(env):
    account = env.account()
    implied = reconcile(env.ledger(), INITIAL, account["unrealized_pnl"])
    assert implied == pytest.approx(account["equity"], rel=1e-12, abs=1e-6)


def test_long_held_across_a_positive_funding_payment_pays_it():
    env = make_env(add_funding(flat_market(), bar=12, rate=0.0001))

    env.step(action(trade=2, size=0.125))
    env.step(action(trade=2, size=0.125))

    # fee 2.5e6 * 0.0004 = 1000; spread 2.5e6 * 1e-4 = 250; funding 25,000 * 100 * 1e-4 * 0.8 = 200
    assert env.account()["equity"] == pytest.approx(INITIAL - 1000 - 250 - 200, abs=1e-6)
    ledger = env.ledger()
    assert list(ledger["kind"]) == ["fill", "funding"]
    assert ledger["funding"].iloc[1] == pytest.approx(200.0)
    assert str(ledger["timestamp"].iloc[1]) == "2024-01-01 00:12:00+00:00"
    assert_reconciles(env)


def test_short_with_positive_funding_receives_it():
    env = make_env(add_funding(flat_market(), bar=12, rate=0.0001))

    env.step(action(trade=0, size=0.125))
    env.step(action(trade=0, size=0.125))

    assert env.positions()[0] == pytest.approx(-25_000.0)
    assert env.account()["funding"] == pytest.approx(-200.0)
    assert env.account()["equity"] == pytest.approx(INITIAL - 1000 - 250 + 200, abs=1e-6)
    assert_reconciles(env)


def test_market_order_pays_fee_half_spread_and_square_root_impact_at_next_open():
    data = flat_market(daily_vol=0.04, daily_notional=1e8)
    data.mkt[11, 0, M_OPEN] = 101.0
    env = make_env(data)

    env.step(action(trade=2, size=0.125))

    fill = env.ledger().iloc[0]
    qty = 2_500_000 / 100.0  # sized at the decision close
    notional = qty * 101.0  # filled at the next open
    impact = 0.5 * 0.04 * math.sqrt(notional / 1e8) * notional
    assert fill["price"] == 101.0
    assert fill["qty"] == pytest.approx(qty)
    assert fill["fee"] == pytest.approx(notional * 0.0004)
    assert fill["spread"] == pytest.approx(notional * 1e-4)
    assert fill["impact"] == pytest.approx(impact)
    # marked at 100 after buying at 101: unrealised -25,000
    expected = INITIAL - notional * (0.0004 + 1e-4) - impact - qty * 1.0
    assert env.account()["equity"] == pytest.approx(expected, abs=1e-6)
    assert_reconciles(env)


def liquidation_market(mark_at_bar_12: float):
    data = flat_market()
    for slot in (M_CLOSE, M_MARK):
        data.mkt[12:, 0, slot] = mark_at_bar_12
    data.mkt[13:, 0, M_OPEN] = mark_at_bar_12
    data.mkt[12:, 0, M_LOW] = mark_at_bar_12 * 0.999
    return data


def test_liquidation_happens_exactly_when_equity_reaches_tiered_maintenance_margin():
    # 200,000 units long at 100 (20x), wallet 1e6 - 8000 fee - 2000 spread = 990,000.
    # Bracket 8M-50M: rate 2.5%, allowance 50 + 2,500 + 120,000 = 122,550.
    # Liquidation when 990,000 + 200,000 (P - 100) <= 200,000 P 0.025 - 122,550: P* = 96.8587...
    p_star = (20_000_000 - 990_000 - 122_550) / 195_000
    safe = make_env(liquidation_market(p_star + 0.01), bars_per_step=4)
    hit = make_env(liquidation_market(p_star - 0.01), bars_per_step=4)

    _, _, safe_terminated, _, safe_info = safe.step(action(trade=2, size=1.0))
    _, _, terminated, _, info = hit.step(action(trade=2, size=1.0))

    assert not safe_terminated and not safe_info["liquidated"]
    assert terminated and info["liquidated"]
    price = p_star - 0.01
    liq = hit.ledger().query("kind == 'liquidation'").iloc[0]
    assert liq["price"] == pytest.approx(price)
    assert liq["liquidation_fee"] == pytest.approx(0.005 * 200_000 * price)
    expected = 990_000 + 200_000 * (price - 100) - 0.005 * 200_000 * price
    assert hit.account()["equity"] == pytest.approx(expected, abs=1e-6)
    assert hit.positions()[0] == 0.0
    assert_reconciles(hit)


def test_a_gap_through_liquidation_books_the_shortfall_as_bad_debt():
    env = make_env(liquidation_market(90.0), bars_per_step=4)

    env.step(action(trade=2, size=1.0))

    account = env.account()
    # wallet 990,000 - 2,000,000 realised - 90,000 fee = -1,100,000 -> bad debt
    assert account["wallet"] == 0.0 and account["equity"] == 0.0
    assert account["bad_debt"] == pytest.approx(1_100_000.0)
    assert env.ledger()["bad_debt"].sum() == pytest.approx(1_100_000.0)
    assert_reconciles(env)


def test_twap_splits_the_order_evenly_over_k_bars_at_each_bars_typical_price():
    data = flat_market()
    closes = [100.0, 101.0, 102.0, 103.0]
    for i, close in enumerate(closes):
        bar = 11 + i
        data.mkt[bar, 0, [M_CLOSE, M_MARK]] = close
        data.mkt[bar, 0, M_HIGH] = close + 1.0
        data.mkt[bar, 0, M_LOW] = close - 2.0
    env = make_env(data, bars_per_step=4)

    env.step(action(trade=2, size=0.125, style=ExecStyle.TWAP, horizon=4))

    fills = env.ledger().query("kind == 'fill'")
    typical = [(c + 1.0 + c - 2.0 + c) / 3.0 for c in closes]
    assert list(fills["bar"]) == [11, 12, 13, 14]
    np.testing.assert_allclose(fills["qty"], 6_250.0)
    np.testing.assert_allclose(fills["price"], typical)
    np.testing.assert_allclose(fills["fee"], 6_250.0 * np.array(typical) * 0.0004)
    assert env.positions()[0] == pytest.approx(25_000.0)
    assert_reconciles(env)


def test_limit_order_that_the_market_never_trades_through_does_not_fill_and_expires():
    data = flat_market()
    data.mkt[:, 0, M_LOW] = 100.0  # the limit bid sits at 100 * (1 - 1e-4) = 99.99
    env = make_env(data, bars_per_step=4)

    env.step(action(trade=2, size=0.125, style=ExecStyle.LIMIT, horizon=3))

    ledger = env.ledger()
    assert list(ledger["kind"]) == ["cancel"]
    assert ledger["bar"].iloc[0] == 13 and ledger["qty"].iloc[0] == pytest.approx(25_000.0)
    assert env.positions()[0] == 0.0
    assert env.account()["equity"] == INITIAL


def test_limit_order_fills_one_clip_per_bar_traded_through_at_the_limit_with_maker_fee():
    data = flat_market()
    data.mkt[:, 0, M_LOW] = 100.0
    data.mkt[12, 0, M_LOW] = 99.9  # only bar 12 trades through 99.99
    env = make_env(data, bars_per_step=4)

    env.step(action(trade=2, size=0.125, style=ExecStyle.LIMIT, horizon=3))

    ledger = env.ledger()
    fill = ledger.query("kind == 'fill'").iloc[0]
    clip = 25_000.0 / 3
    assert fill["bar"] == 12 and fill["qty"] == pytest.approx(clip)
    assert fill["price"] == pytest.approx(99.99)
    assert fill["fee"] == pytest.approx(clip * 99.99 * 0.0002)
    assert fill["spread"] == 0.0 and fill["impact"] == 0.0
    assert ledger.query("kind == 'cancel'")["qty"].iloc[0] == pytest.approx(25_000.0 - clip)
    assert_reconciles(env)


def test_stop_loss_in_atr_multiples_closes_at_the_stop_price():
    data = flat_market(atr=1.0)
    data.mkt[:, 0, M_LOW] = 99.9
    data.mkt[13, 0, M_LOW] = 99.4  # stop at 100 - 0.5 ATR = 99.5
    env = make_env(data, bars_per_step=4)

    env.step(action(trade=2, size=0.125, sl=0.0, tp=1.0))

    stop = env.ledger().query("kind == 'stop_loss'").iloc[0]
    assert stop["bar"] == 13 and stop["price"] == 99.5
    assert stop["realized_pnl"] == pytest.approx(25_000 * (99.5 - 100.0))
    assert env.positions()[0] == 0.0
    assert_reconciles(env)


def test_take_profit_closes_at_the_level_or_the_better_gap_open():
    data = flat_market(atr=1.0)
    data.mkt[13, 0, M_OPEN] = 121.0  # gaps over the take-profit at 100 + 20 ATR = 120
    data.mkt[13, 0, M_HIGH] = 122.0
    env = make_env(data, bars_per_step=4)

    env.step(action(trade=2, size=0.125, sl=1.0, tp=1.0))

    take = env.ledger().query("kind == 'take_profit'").iloc[0]
    assert take["bar"] == 13 and take["price"] == 121.0


def test_funding_aware_order_waits_until_the_paying_funding_time_has_passed():
    data = flat_market()
    data.mkt[:, 0, M_FUNDING_LAST] = 0.0001  # longs currently pay
    data = add_funding(data, bar=13, rate=0.0001)
    env = make_env(data, bars_per_step=5)

    env.step(action(trade=2, size=0.125, style=ExecStyle.FUNDING_AWARE))

    ledger = env.ledger()
    assert list(ledger["kind"]) == ["fill"]
    assert ledger["bar"].iloc[0] == 14
    assert env.account()["funding"] == 0.0


def test_after_the_daily_loss_limit_orders_can_only_reduce():
    data = flat_market()
    data.mkt[12:, 0, [M_CLOSE, M_MARK, M_OPEN, M_LOW]] = 99.0  # -1% on 10x: -10.5% with costs
    env = make_env(data, daily_loss_limit=0.05)
    env.step(action(trade=2, size=0.5))
    env.step(action(trade=2, size=0.5))
    before = env.positions()[0]

    env.step(action(trade=0, size=1.0))  # asks to flip short

    assert before == pytest.approx(100_000.0)
    assert env.positions()[0] == 0.0  # closed, not flipped


def test_leverage_cap_trims_a_position_that_losses_pushed_over_it():
    env = make_env(flat_market())
    env.step(action(trade=2, size=1.0))  # 20x before costs; costs leave it slightly above
    equity = env.account()["equity"]
    assert env.positions()[0] * 100.0 > 20 * equity

    env.step(action(trade=2, size=1.0))

    assert env.positions()[0] * 100.0 == pytest.approx(20 * equity, rel=1e-12)


def test_costs_scale_with_config():
    data = flat_market()
    cheap = PerpetualEnv(data, EnvConfig(window=4, costs=CostConfig(taker_fee=0.0)))
    cheap.reset(options={"start": 10})

    cheap.step(action(trade=2, size=0.125))

    assert cheap.account()["fees"] == 0.0
    assert cheap.account()["spread"] > 0.0


def test_a_same_side_size_change_inside_the_no_trade_band_is_not_traded():
    env = make_env(flat_market())  # budget per asset: 1.0 x 20 x equity; band 0.1 of it
    env.step(action(trade=2, size=0.30))
    held = env.positions()[0]

    env.step(action(trade=2, size=0.35))  # +0.05 of the budget: inside the band
    inside = env.positions()[0]
    env.step(action(trade=2, size=0.50))  # +0.15 of the budget: outside
    outside = env.positions()[0]

    assert inside == held
    assert outside > held * 1.5
    assert list(env.ledger()["kind"]) == ["fill", "fill"]


def test_closing_to_flat_and_reversing_are_never_held_back_by_the_band():
    env = make_env(flat_market())
    env.step(action(trade=2, size=0.02))  # 0.4x equity: above the threshold, below the band

    opened = env.positions()[0]
    env.step(action(trade=0, size=0.02))
    reversed_ = env.positions()[0]
    env.step(action(trade=1, size=0.02))

    assert opened > 0
    assert reversed_ < 0
    assert env.positions()[0] == 0.0


@pytest.mark.parametrize("stops", [True, False])
def test_with_stops_off_a_position_rides_through_its_stop_distance(stops):
    data = flat_market()
    for slot in (M_OPEN, M_HIGH, M_LOW, M_CLOSE, M_MARK):
        data.mkt[13:, 0, slot] *= 0.3  # beyond the nearest stop (0.5 ATR; ATR is 100 here)
    config = EnvConfig(
        window=4, risk_window=3, execution={"stops": stops},
        limits=RiskLimits(max_drawdown=1.0, max_concentration=1.0),
    )
    env = PerpetualEnv(data, config)
    env.reset(seed=0, options={"start": 10})

    for _ in range(5):
        env.step(action(trade=2, size=0.01, sl=0.0, tp=0.0))

    assert ("stop_loss" in set(env.ledger()["kind"])) is stops


def test_a_funding_aware_flip_from_short_to_long_waits_past_the_payment_the_long_would_pay():
    """A short flipped to a long just before a positive funding rate: the new long would
    pay (25,000 units * 100 * 1e-4 * 0.8 = 200, as above), the old short receives the same
    200. The flip is an add on the paying side, so it waits for the payment to pass: the
    short collects 200 at bar 18 and the one fill comes at bar 19: the short's 25,000 plus
    a long of 0.125 * 20 * (1,000,000 - 1,250 opening costs) / 100 = 24,968.75 units."""
    data = flat_market()
    data.mkt[:, 0, M_FUNDING_LAST] = 0.0001  # longs currently pay
    data = add_funding(data, bar=18, rate=0.0001)
    env = make_env(data, bars_per_step=5)

    env.step(action(trade=0, size=0.125))  # short 25,000 at bar 11 (market)
    env.step(action(trade=2, size=0.125, style=ExecStyle.FUNDING_AWARE))

    ledger = env.ledger()
    assert list(ledger["kind"]) == ["fill", "funding", "fill"]
    assert list(ledger["bar"]) == [11, 18, 19]
    assert ledger["qty"].iloc[2] == pytest.approx(49_968.75)
    assert env.account()["funding"] == pytest.approx(-200.0)
    assert env.positions()[0] == pytest.approx(24_968.75)
    assert_reconciles(env)


def test_a_funding_aware_order_that_only_reduces_never_waits():
    """Cutting a short of 60,000 units (size 0.3; opening costs 2,400 + 600) to size 0.1
    (0.1 * 20 * 997,000 / 100 = 19,940 units; a change of 0.2, outside the 0.1 band) pays
    nothing at the funding time, so it fills at once, at bar 16: 40,060 units. The rest of
    the short receives 19,940 * 0.008 = 159.52 at bar 18."""
    data = flat_market()
    data.mkt[:, 0, M_FUNDING_LAST] = 0.0001
    data = add_funding(data, bar=18, rate=0.0001)
    env = make_env(data, bars_per_step=5)

    env.step(action(trade=0, size=0.3))
    env.step(action(trade=0, size=0.1, style=ExecStyle.FUNDING_AWARE))

    ledger = env.ledger()
    assert list(ledger["bar"]) == [11, 16, 18]
    assert ledger["qty"].iloc[1] == pytest.approx(40_060.0, abs=0.01)
    assert env.account()["funding"] == pytest.approx(-159.52, abs=1e-4)
    assert_reconciles(env)


def _named(data, asset):
    return dataclasses.replace(data, assets=(asset,))


@pytest.mark.parametrize(("asset", "units", "p_star"), [
    # at 10x (max_leverage 10) size 0.25 asks 2,500,000 notional.
    # SOL's brackets allow 10x only below 2M (the next allows 5x): the target is capped at
    # 2,000,000 = 20,000 units; wallet 1e6 - 800 fee - 200 spread = 999,000. Near 1.03M
    # notional the bracket is [1M, 2M): rate 5%, Binance's cum 26,900:
    # 999,000 + 20,000 (P - 100) <= 1,000 P - 26,900  ->  P* = 974,100 / 19,000
    ("SOL", 20_000.0, 974_100 / 19_000),
    # BTC allows 10x up to 40M: 25,000 units; wallet 1e6 - 1,000 - 250 = 998,750; the
    # bracket [250k, 3M): rate 1%, cum 1,300:
    # 998,750 + 25,000 (P - 100) <= 250 P - 1,300  ->  P* = 1,500,050 / 24,750
    ("BTC", 25_000.0, 1_500_050 / 24_750),
])
def test_each_asset_is_capped_and_liquidated_by_its_own_bracket_table(asset, units, p_star):
    assert p_star == pytest.approx({"SOL": 51.2684, "BTC": 60.6081}[asset], abs=1e-4)
    safe = make_env(_named(liquidation_market(p_star + 0.01), asset), bars_per_step=1,
                    max_leverage=10.0)
    hit = make_env(_named(liquidation_market(p_star - 0.01), asset), bars_per_step=4,
                   max_leverage=10.0)

    safe.step(action(trade=2, size=0.25))
    held = safe.positions()[0]
    _, _, safe_terminated, _, safe_info = safe.step(action(trade=2, size=0.25))
    _, _, terminated, _, info = hit.step(action(trade=2, size=0.25))

    assert held == pytest.approx(units)
    assert not safe_terminated and not safe_info["liquidated"]
    assert terminated and info["liquidated"]
    assert_reconciles(hit)


def test_published_tables_reproduce_binances_maintenance_amounts():
    from envs.config import MarginConfig, allowances_of
    from risk.brackets import RECORDED

    margin = MarginConfig()
    for asset, rows in RECORDED.items():
        assert margin.table(asset) == tuple((f, r) for f, r, _, _ in rows)
        assert allowances_of(margin.table(asset)) == pytest.approx([c for *_, c in rows],
                                                                   abs=1e-6)
    assert margin.table("DOGE") == margin.brackets  # no table of its own: the default
    # position limits at a leverage: the floor of the first bracket that allows less
    assert margin.position_cap("SOL", 20) == 1_000_000.0
    assert margin.position_cap("SOL", 10) == 2_000_000.0
    assert margin.position_cap("BTC", 20) == 20_000_000.0
    assert margin.position_cap("ETH", 20) == 15_000_000.0
    assert margin.position_cap("DOGE", 20) == math.inf


def stop_env(data, bars_per_step=8, **execution):
    config = EnvConfig(window=4, risk_window=3, bars_per_step=bars_per_step,
                       limits=RiskLimits(max_drawdown=1.0, max_concentration=1.0),
                       execution=ExecutionConfig(**execution))
    env = PerpetualEnv(data, config)
    env.reset(seed=0, options={"start": 10})
    return env


def path_market(closes: dict[int, float], low: dict[int, float] | None = None):
    """flat_market with ATR 1: bar b opens at the previous close and closes at closes[b]
    (100 until the first given bar, each price held until the next), high/low 0.05 around
    the bar's range unless ``low`` sets a bar's low."""
    data = flat_market(atr=1.0)
    price = np.full(data.n_bars, 100.0)
    for bar in sorted(closes):
        price[bar:] = closes[bar]
    opens = np.r_[price[:1], price[:-1]]
    data.mkt[:, 0, M_CLOSE] = data.mkt[:, 0, M_MARK] = price
    data.mkt[:, 0, M_OPEN] = opens
    data.mkt[:, 0, M_HIGH] = np.maximum(opens, price) + 0.05
    data.mkt[:, 0, M_LOW] = np.minimum(opens, price) - 0.05
    for bar, value in (low or {}).items():
        data.mkt[bar, 0, M_LOW] = value
    return data


def test_a_time_stop_closes_the_position_at_the_open_n_bars_after_it_opened():
    env = stop_env(flat_market(), time_stop_bars=3)

    env.step(action(trade=2, size=0.125))  # opened at bar 11's open

    ledger = env.ledger()
    assert list(ledger["kind"]) == ["fill", "time_stop"]
    assert list(ledger["bar"]) == [11, 14]  # held through bars 11, 12, 13
    assert ledger["price"].iloc[1] == 100.0
    assert env.positions()[0] == 0.0
    assert_reconciles(env)


def test_a_trailing_stop_follows_the_close_and_fills_at_the_trailed_level():
    # long 25,000 at 100, stop 100 - 0.5 ATR = 99.5; trailing 2 ATR: after bar 12's close
    # (103) the stop is 101, after bar 13's (104) 102; bar 14 trades down to 101.5: the
    # stop fills at 102 (the bar opened at 104, above it). Without trailing: no stop.
    data = path_market({12: 103.0, 13: 104.0, 14: 103.0}, low={14: 101.5})
    trailed = stop_env(data, trailing_stop_atr=2.0)
    fixed = stop_env(data)

    trailed.step(action(trade=2, size=0.125, sl=0.0, tp=1.0))
    fixed.step(action(trade=2, size=0.125, sl=0.0, tp=1.0))

    stop = trailed.ledger().query("kind == 'stop_loss'").iloc[0]
    assert stop["bar"] == 14 and stop["price"] == 102.0
    assert stop["realized_pnl"] == pytest.approx(25_000 * (102.0 - 100.0))
    assert "stop_loss" not in set(fixed.ledger()["kind"])
    assert_reconciles(trailed)


def test_break_even_moves_the_stop_to_the_entry_after_the_profit_threshold():
    # long at 100, stop 99.5; bar 12 closes at 102.5 (2.5 ATR in profit >= 2): the stop
    # moves to the entry, 100; bar 13 trades down to 99.8: out at 100 (fees only lost)
    data = path_market({12: 102.5, 13: 100.2}, low={13: 99.8})
    env = stop_env(data, break_even_atr=2.0)

    env.step(action(trade=2, size=0.125, sl=0.0, tp=1.0))

    stop = env.ledger().query("kind == 'stop_loss'").iloc[0]
    assert stop["bar"] == 13 and stop["price"] == 100.0
    assert stop["realized_pnl"] == pytest.approx(0.0, abs=1e-6)
    assert_reconciles(env)


def test_a_new_decision_never_loosens_a_trailed_stop():
    # one bar per step: the long is renewed at every close with the widest stop (10 ATR
    # below the close), but the trailed stop (2 ATR) stays: after bar 13's close (104) it
    # is 102, and bar 14 (low 101.5) stops the position out there
    data = path_market({12: 103.0, 13: 104.0, 14: 103.0}, low={14: 101.5})
    env = stop_env(data, bars_per_step=1, trailing_stop_atr=2.0)

    for _ in range(4):
        env.step(action(trade=2, size=0.125, sl=1.0, tp=1.0))

    stop = env.ledger().query("kind == 'stop_loss'").iloc[0]
    assert stop["bar"] == 14 and stop["price"] == 102.0
