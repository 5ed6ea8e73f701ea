"""Which exchange and symbols a command reads from a store when the user names none
(market.loader.choose_exchange / choose_symbols / symbols_of_assets, ParquetStore listings)."""

import pytest

from market.loader import (
    DEFAULT_SYMBOLS,
    MarketChoiceError,
    choose_exchange,
    choose_symbols,
    symbols_of_assets,
)
from market.schema import Kind
from market.store import ParquetStore, SeriesKey
from tests.unit.market.bars import make_bars, make_funding


def _store(root, series: dict[str, list[str]], timeframe: str = "1m") -> ParquetStore:
    """A store holding a few bars of each exchange's symbols (and funding of the first)."""
    store = ParquetStore(root)
    freq = {"1m": "1min", "5m": "5min"}[timeframe]
    for exchange, symbols in series.items():
        for symbol in symbols:
            store.append(SeriesKey.bars(exchange, symbol, timeframe), make_bars(30, freq=freq))
        store.append(SeriesKey.funding(exchange, symbols[0]), make_funding("2024-01-01", 2))
    return store


def test_store_lists_its_exchanges_and_their_symbols_sorted(tmp_path):
    store = _store(
        tmp_path, {"okx": ["ETH/USDT:USDT", "BTC/USDT:USDT"], "bybit": ["SOL/USDT:USDT"]}
    )
    store.append(SeriesKey.bars("okx", "XRP/USDT:USDT", "5m"), make_bars(5, freq="5min"))
    store.append(SeriesKey.bars("kraken", "BTC/USD:USD", "1m", Kind.MARK), make_bars(5))

    assert store.exchanges() == ["bybit", "okx"]  # mark bars alone are not a market
    assert store.symbols("okx") == ["BTC/USDT:USDT", "ETH/USDT:USDT", "XRP/USDT:USDT"]
    assert store.symbols("okx", "1m") == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert store.symbols("kraken") == []


def test_the_only_stored_exchange_is_the_default(tmp_path):
    store = _store(tmp_path, {"binanceusdm": ["BTC/USDT:USDT"]})

    assert choose_exchange(store, None) == "binanceusdm"
    assert choose_exchange(store, "binanceusdm") == "binanceusdm"


def test_several_exchanges_and_no_choice_is_an_error_listing_them(tmp_path):
    store = _store(tmp_path, {"synthetic": ["BTC/USDT:USDT"], "binanceusdm": ["BTC/USDT:USDT"]})

    with pytest.raises(MarketChoiceError, match=r"several exchanges \(binanceusdm, synthetic\)"):
        choose_exchange(store, None)


def test_an_exchange_without_data_is_an_error_listing_the_stored_ones(tmp_path):
    store = _store(tmp_path, {"synthetic": ["BTC/USDT:USDT"], "okx": ["BTC/USDT:USDT"]})

    with pytest.raises(MarketChoiceError, match=r"no bybit bars .* it holds: okx, synthetic"):
        choose_exchange(store, "bybit")


def test_an_empty_or_missing_store_says_how_to_fill_it(tmp_path):
    with pytest.raises(MarketChoiceError, match=r"no market data under .*quantum data"):
        choose_exchange(ParquetStore(tmp_path / "nowhere"), None)


def test_default_symbols_are_kept_when_stored_whatever_else_is(tmp_path):
    store = _store(tmp_path, {"binanceusdm": ["XRP/USDT:USDT", *DEFAULT_SYMBOLS, "BNB/USDT:USDT"]})

    assert choose_symbols(store, "binanceusdm", None) == list(DEFAULT_SYMBOLS)


def test_without_the_default_symbols_every_stored_one_is_used_in_sorted_order(tmp_path):
    store = _store(tmp_path, {"okx": ["XRP/USDT:USDT", "BTC/USDT:USDT", "ADA/USDT:USDT"]})

    assert choose_symbols(store, "okx", None) == ["ADA/USDT:USDT", "BTC/USDT:USDT", "XRP/USDT:USDT"]
    assert choose_symbols(store, "okx", []) == ["ADA/USDT:USDT", "BTC/USDT:USDT", "XRP/USDT:USDT"]


def test_named_symbols_are_kept_in_their_order_when_stored(tmp_path):
    store = _store(tmp_path, {"okx": ["BTC/USDT:USDT", "ETH/USDT:USDT"]})

    assert choose_symbols(store, "okx", ["ETH/USDT:USDT", "BTC/USDT:USDT"]) == [
        "ETH/USDT:USDT",
        "BTC/USDT:USDT",
    ]


def test_missing_symbols_are_named_with_what_is_stored(tmp_path):
    store = _store(tmp_path, {"okx": ["BTC/USDT:USDT", "ETH/USDT:USDT"]})

    with pytest.raises(MarketChoiceError) as err:
        choose_symbols(store, "okx", ["BTC/USDT:USDT", "SOL/USDT:USDT"])

    assert "no 1m bars of SOL/USDT:USDT" in str(err.value)
    assert "stored: BTC/USDT:USDT, ETH/USDT:USDT" in str(err.value)


def test_another_timeframe_only_is_an_error_naming_the_stored_timeframes(tmp_path):
    store = _store(tmp_path, {"okx": ["BTC/USDT:USDT"]}, timeframe="5m")

    with pytest.raises(MarketChoiceError, match=r"no 1m bars of okx .*stored timeframes: 5m"):
        choose_symbols(store, "okx", None)


def test_asset_names_map_to_the_stored_symbol_of_their_base():
    stored = ["BTC/USDC:USDC", "ETH/USDT:USDT", "ETH/USDC:USDC"]

    mapped = symbols_of_assets(["BTC", "ETH", "SOL", "XRP/USDT:USDT"], stored)

    # the one BTC symbol; two ETH ones: the USDT perp; none: the USDT perp (reported missing)
    assert mapped == ["BTC/USDC:USDC", "ETH/USDT:USDT", "SOL/USDT:USDT", "XRP/USDT:USDT"]
