"""Leverage tiers from ccxt's real exchange classes (recorded native responses beneath
their HTTP session), converted to the simulator's tables and recorded in the store."""

import pytest
import yaml

from envs.config import MarginConfig, allowances_of
from market.tiers import TiersError, brackets_of, fetch_tiers, read_tiers, record_tiers, tiers_path
from rl.config import TrainConfig
from tests.unit.market.ccxt_fakes import (
    BinanceVenue,
    BybitVenue,
    OkxVenue,
    fake_exchange,
    fixture,
)

SYMBOLS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]


def test_bybit_tiers_become_tables_whose_allowances_are_the_venues_deductions():
    venue = BybitVenue()

    tiers = fetch_tiers(fake_exchange(venue), SYMBOLS)

    native = fixture("bybit", "v5_market_risk-limit_linear.json")
    for symbol, market_id in zip(SYMBOLS, ("BTCUSDT", "ETHUSDT"), strict=True):
        rows = native[market_id]
        table = tuple(tuple(row) for row in tiers[symbol]["brackets"])
        assert table[0] == (0.0, 0.005)
        assert [f for f, _ in table[1:]] == [float(r["riskLimitValue"]) for r in rows[:-1]]
        deductions = [float(r["mmDeduction"] or 0) for r in rows]
        assert list(allowances_of(table)) == pytest.approx(deductions)
        assert tiers[symbol]["max_leverage"] == [float(r["maxLeverage"]) for r in rows]
    assert [r.params["symbol"] for r in venue.received if r.path == "/v5/market/risk-limit"] \
        == ["BTCUSDT", "ETHUSDT"]


def test_binance_without_keys_and_okx_contract_tiers_are_refused_with_what_to_do():
    with pytest.raises(TiersError, match="signed requests: set QUANTUM_BINANCEUSDM_API_KEY"):
        fetch_tiers(fake_exchange(BinanceVenue()), SYMBOLS)
    with pytest.raises(TiersError, match="contracts, not notional"):
        fetch_tiers(fake_exchange(OkxVenue()), SYMBOLS)


@pytest.mark.parametrize(("tiers", "match"), [
    ([], "no leverage tiers"),
    ([{"minNotional": 5.0, "maintenanceMarginRate": 0.01, "maxLeverage": 50}], "not 0"),
    ([{"minNotional": 0, "maintenanceMarginRate": 0.01, "maxLeverage": 50, "maxNotional": 10},
      {"minNotional": 20, "maintenanceMarginRate": 0.02, "maxLeverage": 25}], "ends at 10"),
    ([{"minNotional": 0, "maintenanceMarginRate": 0.02, "maxLeverage": 50},
      {"minNotional": 20, "maintenanceMarginRate": 0.01, "maxLeverage": 25}], "not ascending"),
    ([{"minNotional": 0, "maintenanceMarginRate": None, "maxLeverage": 50}], "no usable"),
])
def test_a_broken_tier_table_is_refused(tiers, match):
    with pytest.raises(TiersError, match=match):
        brackets_of("BTC/USDT:USDT", tiers)


def test_recording_merges_symbols_and_a_damaged_file_is_an_error(tmp_path):
    exchange = fake_exchange(BybitVenue())

    record_tiers(tmp_path, exchange, SYMBOLS[:1])
    record_tiers(tmp_path, exchange, SYMBOLS[1:])

    assert set(read_tiers(tmp_path, "bybit")) == set(SYMBOLS)
    assert read_tiers(tmp_path, "okx") == {}
    path = tiers_path(tmp_path, "bybit")
    assert not list(path.parent.glob("*.tmp"))
    path.write_text(path.read_text()[:40])
    with pytest.raises(TiersError, match="unreadable leverage tiers"):
        read_tiers(tmp_path, "bybit")


def test_a_run_on_the_store_is_margined_with_its_recorded_tiers_unless_it_names_its_own(tmp_path):
    record_tiers(tmp_path, fake_exchange(BybitVenue()), SYMBOLS)
    market = {"data_dir": str(tmp_path), "exchange": "bybit", "symbols": SYMBOLS}
    own = {"asset_brackets": {"ETH": [[0.0, 0.02]]}, "asset_leverage": {"ETH": [10.0]}}

    plain = TrainConfig.model_validate({"env_config": market}).with_store_tiers()
    named = TrainConfig.model_validate(
        {"env_config": {**market, "env": {"margin": own}}}).with_store_tiers()
    synthetic = TrainConfig().with_store_tiers()

    recorded = read_tiers(tmp_path, "bybit")
    margin = plain.env.margin
    assert margin.table("BTC") == tuple(map(tuple, recorded["BTC/USDT:USDT"]["brackets"]))
    assert margin.table("ETH") == tuple(map(tuple, recorded["ETH/USDT:USDT"]["brackets"]))
    assert margin.table("SOL") == MarginConfig().table("SOL")  # not in the store: published
    assert margin.position_cap("BTC", 50.0) == 4_000_000.0  # tier 3 allows only 40x
    assert named.env.margin.table("ETH") == ((0.0, 0.02),)
    assert named.env.margin.table("BTC") == margin.table("BTC")
    assert synthetic == TrainConfig()
    saved = yaml.safe_load(yaml.safe_dump(plain.model_dump(mode="json")))  # the run's YAML
    assert TrainConfig.model_validate(saved).env.margin == margin
