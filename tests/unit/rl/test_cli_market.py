"""`quantum train/tune --data STORE [--exchange X]`: the exchange and symbols a run reads
(rl.cli_input.store_market), settled before Ray starts."""

import pytest

from market.loader import DEFAULT_SYMBOLS, MarketChoiceError
from rl.cli import load_config
from rl.cli_input import store_market
from tests.unit.market.bars import store_with as _store


def test_a_store_with_one_exchange_needs_no_exchange_option(tmp_path):
    data = _store(tmp_path, {"binanceusdm": [*DEFAULT_SYMBOLS, "XRP/USDT:USDT"]})

    config = store_market(load_config("defaults", data=data))

    assert config.env_config["exchange"] == "binanceusdm"
    assert config.env_config["symbols"] == list(DEFAULT_SYMBOLS)
    assert "synthetic_days" not in config.env_config


def test_without_the_default_symbols_the_stored_ones_are_used(tmp_path):
    data = _store(tmp_path, {"okx": ["XRP/USDT:USDT", "BTC/USDT:USDT"]})

    config = store_market(load_config("defaults", data=data))

    assert config.env_config["symbols"] == ["BTC/USDT:USDT", "XRP/USDT:USDT"]


def test_the_exchange_option_picks_one_of_several(tmp_path):
    data = _store(tmp_path, {"synthetic": list(DEFAULT_SYMBOLS), "okx": ["BTC/USDT:USDT"]})

    config = store_market(load_config("defaults", data=data, exchange="okx"), "okx")

    assert (config.env_config["exchange"], config.env_config["symbols"]) == (
        "okx",
        ["BTC/USDT:USDT"],
    )


def test_several_exchanges_without_a_choice_are_refused_listing_them(tmp_path):
    data = _store(tmp_path, {"synthetic": list(DEFAULT_SYMBOLS), "okx": ["BTC/USDT:USDT"]})

    with pytest.raises(MarketChoiceError, match=r"several exchanges \(okx, synthetic\)"):
        store_market(load_config("defaults", data=data))


def test_an_exchange_set_in_the_config_counts_as_chosen(tmp_path):
    data = _store(tmp_path, {"synthetic": list(DEFAULT_SYMBOLS), "okx": ["BTC/USDT:USDT"]})
    config = load_config("defaults", data=data).with_overrides(**{"env_config.exchange": "okx"})

    assert store_market(config).env_config["exchange"] == "okx"


def test_the_configs_symbols_must_be_stored(tmp_path):
    data = _store(tmp_path, {"okx": ["BTC/USDT:USDT"]})
    config = load_config("defaults", data=data).with_overrides(
        **{"env_config.symbols": ["BTC/USDT:USDT", "DOGE/USDT:USDT"]}
    )

    with pytest.raises(MarketChoiceError, match="DOGE/USDT:USDT; stored: BTC/USDT:USDT"):
        store_market(config)


def test_the_exchange_option_without_a_store_is_refused():
    config = load_config("defaults", exchange="okx")

    with pytest.raises(ValueError, match="give the store with --data"):
        store_market(config, "okx")


def test_the_in_memory_synthetic_market_is_left_alone():
    config = load_config("defaults")

    assert store_market(config) == config
