"""The backtest loop on the simulator: rules, accounting, spans, early ends, benchmark."""

import numpy as np
import pytest

from backtest.baselines import RULES, buy_and_hold, flat, momentum
from backtest.engine import benchmark_equity, run_policy
from envs.config import EnvConfig
from envs.registry import market_for


@pytest.fixture(scope="module")
def data():
    return market_for({"synthetic_days": 4, "synthetic_seed": 5})


def test_flat_rule_keeps_the_capital_and_writes_no_ledger(data):
    config = EnvConfig()
    start = data.first_valid

    result = run_policy(flat(data, config), data, config, start, start + 600, "flat")

    assert len(result.steps) == 601 and result.ended_early is None
    assert (result.equity == config.initial_balance).all()
    assert result.ledger.empty and (result.positions.to_numpy() == 0).all()


def test_buy_and_hold_holds_one_x_equity_split_evenly_and_costs_reconcile(data):
    config = EnvConfig(execution={"stops": False})  # as backtests run the rules
    start = data.first_valid

    result = run_policy(buy_and_hold(data, config), data, config, start, start + 900, "bh")

    later = result.steps.iloc[10:]
    np.testing.assert_allclose(later["leverage"], 1.0, atol=0.06)  # within the rebalance band
    shares = result.positions.iloc[10:].div(later["equity"], axis=0)
    np.testing.assert_allclose(shares.to_numpy(), 1 / 3, atol=0.03)
    ledger = result.ledger
    last = result.steps.iloc[-1]
    assert last["fees"] == pytest.approx(ledger["fee"].sum() + ledger["liquidation_fee"].sum())
    assert last["funding"] == pytest.approx(ledger["funding"].sum())
    assert last["impact"] == pytest.approx(ledger["impact"].sum())
    assert (ledger["kind"] == "funding").sum() >= 3  # 900 minutes cross at least one 8h event


def test_steps_are_stamped_at_their_decision_bars(data):
    config = EnvConfig(bars_per_step=5)
    start = data.first_valid

    result = run_policy(momentum(data, config), data, config, start, start + 500, "m")

    stamps = result.steps.index.as_unit("ns").asi8
    assert stamps[0] == data.timestamps[start]
    np.testing.assert_array_equal(np.diff(stamps), 5 * 60 * 10**9)
    assert len(result.steps) == 101


def test_an_all_in_policy_ends_early_and_says_why(data):
    config = EnvConfig(limits={"max_concentration": 1.0, "max_drawdown": 0.05})
    start = data.first_valid

    def all_in(obs):
        n = len(obs["market"])
        return {
            "trade": np.full((n, 3), 2),
            "size": np.ones((n, 3), np.float32),
            "risk": np.ones((n, 6), np.float32),
            "execution": np.zeros((n, 6), np.int64),
        }

    result = run_policy(all_in, data, config, start, data.n_bars - 1, "all_in")

    assert result.ended_early in ("max_drawdown", "liquidation")
    assert len(result.steps) < data.n_bars - start
    equity = result.equity
    assert equity.iloc[-1] <= 0.95 * max(equity.max(), config.initial_balance) + 1e-6


def test_a_span_outside_the_usable_data_is_refused(data):
    config = EnvConfig()
    with pytest.raises(ValueError, match="warm-up"):
        run_policy(flat(data, config), data, config, 0, 100, "flat")
    with pytest.raises(ValueError, match="outside usable bars"):
        run_policy(flat(data, config), data, config, data.first_valid, data.n_bars, "flat")


def test_actions_out_of_range_stop_the_backtest_with_a_clear_error(data):
    config = EnvConfig()

    def broken(obs):
        action = flat(data, config)(obs)
        action["size"][:] = np.nan
        return action

    with pytest.raises(ValueError, match="size"):
        run_policy(broken, data, config, data.first_valid, data.first_valid + 5, "broken")


def test_benchmark_is_the_price_path_scaled_to_the_capital(data):
    config = EnvConfig()
    result = run_policy(flat(data, config), data, config, data.first_valid,
                        data.first_valid + 100, "flat")

    line = benchmark_equity(result.prices, "BTC", 1_000.0)

    prices = result.prices["BTC"]
    assert line.iloc[0] == 1_000.0
    assert line.iloc[-1] == pytest.approx(1_000.0 * prices.iloc[-1] / prices.iloc[0])
    with pytest.raises(ValueError, match="DOGE"):
        benchmark_equity(result.prices, "DOGE", 1.0)


def test_every_rule_is_registered_and_valid_for_the_env(data):
    config = EnvConfig()
    for name, rule in RULES.items():
        result = run_policy(rule(data, config), data, config, data.first_valid,
                            data.first_valid + 50, name)
        assert len(result.steps) == 51, name


def test_slippage_option_sets_the_half_spread_every_taker_fill_pays(data):
    from backtest.run import BacktestOptions

    base = EnvConfig()
    slipped = BacktestOptions(slippage=0.002, commission=0.0).env_config(base)
    start = data.first_valid

    default = run_policy(momentum(data, base), data, base, start, start + 400, "m")
    costly = run_policy(momentum(data, slipped), data, slipped, start, start + 400, "m")

    fills = costly.ledger[costly.ledger["kind"] == "fill"]
    assert len(fills) > 5
    np.testing.assert_allclose(fills["spread"] / fills["notional"], 0.002, rtol=1e-9)
    assert (fills["fee"] == 0).all()
    assert costly.steps["spread"].iloc[-1] > 3 * default.steps["spread"].iloc[-1]
