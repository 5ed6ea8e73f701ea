"""Backtest options, spans, benchmark names and the per-regime table."""

import numpy as np
import pandas as pd
import pytest

from backtest.baselines import buy_and_hold
from backtest.engine import run_policy
from backtest.run import BacktestOptions, regime_table, resolve_asset, span_bars
from envs.config import EnvConfig
from envs.registry import market_for


@pytest.fixture(scope="module")
def data():
    return market_for({"synthetic_days": 4, "synthetic_seed": 5})


def test_options_override_only_what_they_name():
    base = EnvConfig(window=12)

    config = BacktestOptions(initial_capital=5e4, commission=0.001, max_leverage=3,
                             risk_free_rate=0.05).env_config(base)

    assert config.initial_balance == 5e4 and config.risk_free_rate == 0.05
    assert config.costs.taker_fee == 0.001 and config.costs.maker_fee == base.costs.maker_fee
    assert config.limits.max_leverage == 3
    assert config.limits.daily_loss_limit == base.limits.daily_loss_limit
    assert config.window == 12
    assert BacktestOptions().env_config(base) == base


def test_span_is_clipped_to_usable_bars_and_last_days_counts_back_from_the_end(data):
    config = EnvConfig()

    lo, hi = span_bars(data, config, None, None)
    day_lo, day_hi = span_bars(data, config, None, None, last_days=1)

    assert lo == max(data.first_valid, config.window - 1) and hi == data.n_bars - 1
    assert day_hi == hi and day_lo == hi - 1440
    with pytest.raises(ValueError, match="no usable bars"):
        span_bars(data, config, "2030-01-01", None)


def test_benchmark_names_resolve_by_base_asset():
    assets = ("BTC/USDT:USDT", "ETH/USDT:USDT")
    assert resolve_asset(assets, "eth") == "ETH/USDT:USDT"
    with pytest.raises(ValueError, match="SOL"):
        resolve_asset(assets, "SOL")


def test_regime_table_groups_each_step_by_the_regime_it_started_in(data):
    config = EnvConfig()
    start = data.first_valid
    result = run_policy(buy_and_hold(data, config), data, config, start, start + 300, "bh")
    index = result.steps.index
    labels = pd.Series(np.where(np.arange(len(index)) < 100, "calm", "storm"), index=index)

    table = regime_table(result, labels).set_index("regime")

    returns = result.returns.to_numpy()
    assert table.loc["calm", "steps"] == 100 and table.loc["storm", "steps"] == 200
    assert table.loc["calm", "total_return"] == pytest.approx(np.prod(1 + returns[:100]) - 1)
    assert table["share"].sum() == pytest.approx(1.0)
