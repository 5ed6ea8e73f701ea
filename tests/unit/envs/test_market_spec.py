"""`quantum backtest/analyze-bias --data-path X [--exchange Y] [--symbols ...]`: a model's
env_config with only the market swapped (envs.market_spec.MarketSpec.elsewhere)."""

import pytest

from envs.market_spec import EPISODE_KEYS, MarketSpec
from market.loader import DEFAULT_SYMBOLS, MarketChoiceError
from rl.config import TrainConfig
from tests.unit.market.bars import store_with as _store


def market_env_config(run, data_path, seed, days, symbols=None, exchange=None,
                      model_symbols=None):
    """A run's env_config on the market the options name (what TrainConfig.on_market does)."""
    market = MarketSpec.of(run).elsewhere(data_path, seed, days, symbols, exchange, model_symbols)
    return market.into({k: v for k, v in run.items() if k not in EPISODE_KEYS})

SYNTHETIC_RUN = TrainConfig().env_config  # trained on the in-memory synthetic market
REAL_RUN = {
    "data_dir": "runs-store",
    "exchange": "binanceusdm",
    "symbols": ["ETH/USDT:USDT", "BTC/USDT:USDT"],
    "start": "2023-07-20",
    "env": {"episode_steps": 32, "bars_per_step": 15},
}


def test_a_synthetic_model_moves_to_a_real_store_with_only_the_data_keys_changed(tmp_path):
    data = _store(tmp_path, {"binanceusdm": [*DEFAULT_SYMBOLS, "XRP/USDT:USDT"]})

    env = market_env_config(
        SYNTHETIC_RUN, data, None, None, exchange="binanceusdm", model_symbols=["BTC", "ETH", "SOL"]
    )

    kept = {k: v for k, v in SYNTHETIC_RUN.items() if not k.startswith("synthetic_")}
    assert "synthetic_days" in SYNTHETIC_RUN and "env" in kept
    assert env == {
        **kept,
        "data_dir": str(data),
        "exchange": "binanceusdm",
        "symbols": list(DEFAULT_SYMBOLS),
    }


def test_another_store_defaults_to_its_only_exchange_and_the_models_assets(tmp_path):
    data = _store(tmp_path, {"synthetic": ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]})

    env = market_env_config(REAL_RUN, data, None, None, model_symbols=REAL_RUN["symbols"])

    assert env["exchange"] == "synthetic"
    assert env["symbols"] == ["ETH/USDT:USDT", "BTC/USDT:USDT"]  # the model's order
    assert "start" not in env and env["env"] == REAL_RUN["env"]


def test_another_store_with_several_exchanges_needs_the_exchange_option(tmp_path):
    data = _store(tmp_path, {"synthetic": list(DEFAULT_SYMBOLS), "binanceusdm": ["BTC/USDT:USDT"]})

    with pytest.raises(MarketChoiceError, match=r"several exchanges \(binanceusdm, synthetic\)"):
        market_env_config(REAL_RUN, data, None, None)


def test_a_model_whose_assets_are_not_stored_is_refused_naming_them(tmp_path):
    data = _store(tmp_path, {"okx": ["BTC/USDT:USDT", "XRP/USDT:USDT"]})

    with pytest.raises(MarketChoiceError) as err:
        market_env_config(SYNTHETIC_RUN, data, None, None, model_symbols=["BTC", "ETH", "SOL"])

    message = str(err.value)
    assert "ETH/USDT:USDT, SOL/USDT:USDT" in message and "stored: BTC/USDT:USDT, XRP" in message
    assert "pick 3 stored ones with --symbols" in message


def test_symbols_option_takes_asset_names_or_symbols(tmp_path):
    data = _store(tmp_path, {"okx": ["BTC/USDT:USDT", "XRP/USDT:USDT"]})

    env = market_env_config(SYNTHETIC_RUN, data, None, None, "XRP, BTC/USDT:USDT")

    assert env["symbols"] == ["XRP/USDT:USDT", "BTC/USDT:USDT"]


def test_the_runs_own_store_keeps_the_runs_exchange_unless_told(tmp_path):
    data = _store(tmp_path, {"synthetic": list(DEFAULT_SYMBOLS), "okx": list(DEFAULT_SYMBOLS)})
    old_run = {"data_dir": str(data)}  # trained before runs recorded their exchange

    assert market_env_config(old_run, None, None, None)["exchange"] == "synthetic"
    assert market_env_config(old_run, None, None, None, exchange="okx")["exchange"] == "okx"


def test_the_exchange_option_without_any_store_is_refused():
    with pytest.raises(ValueError, match="give the store with --data-path"):
        market_env_config(SYNTHETIC_RUN, None, 3, None, exchange="binanceusdm")


def test_a_fresh_synthetic_market_drops_the_store():
    env = market_env_config(REAL_RUN, None, 5, 10.0)

    assert "data_dir" not in env
    assert (env["synthetic_seed"], env["synthetic_days"]) == (5, 10.0)


def test_a_config_on_another_market_drops_its_episode_starts_and_dates():
    run = TrainConfig().with_overrides(**{"env_config.start_range": [100, 200],
                                          "env_config.synthetic_seed": 3})
    moved = run.on_market(run.market.elsewhere(synthetic_seed=11))

    assert moved.market == MarketSpec(synthetic_days=30.0, synthetic_seed=11)
    assert "start_range" not in moved.env_config
    assert moved.env_config["env"] == run.env_config["env"]


def test_a_spec_round_trips_through_env_config_keys():
    keys = {
        "data_dir": "/d",
        "exchange": "okx",
        "symbols": ["BTC/USDT:USDT"],
        "start": "2023-07-20",
    }

    spec = MarketSpec.of({**keys, "env": {"episode_steps": 8}})

    assert spec.keys() == keys
    assert spec.into({"env": {}, "synthetic_days": 3.0}) == {"env": {}, **keys}
    assert spec.identity() == MarketSpec.of({**keys, "start": None}).identity()
    assert spec.identity() != spec.model_copy(update={"exchange": "bybit"}).identity()
