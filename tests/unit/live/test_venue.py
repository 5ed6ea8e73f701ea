"""Trading modes (live/venue.py): live needs explicit consent, both need keys from the
environment, testnet is ccxt's sandbox, and keys never reach a log line."""

import logging

import pytest

from live.venue import CONSENT_FLAG, TradingMode, VenueError, trading_exchange

KEYS = {"QUANTUM_BINANCEUSDM_API_KEY": "tk-123456789", "QUANTUM_BINANCEUSDM_SECRET": "ts-987654321"}


def test_live_refuses_to_start_without_consent_and_paper_takes_no_exchange():
    with pytest.raises(VenueError, match=CONSENT_FLAG):
        trading_exchange("binanceusdm", TradingMode.LIVE, env=KEYS)
    with pytest.raises(VenueError, match="simulator"):
        trading_exchange("binanceusdm", TradingMode.PAPER, env=KEYS)


def test_missing_keys_are_named():
    with pytest.raises(VenueError, match="QUANTUM_BINANCEUSDM_SECRET"):
        trading_exchange("binanceusdm", TradingMode.TESTNET,
                         env={"QUANTUM_BINANCEUSDM_API_KEY": "tk-only-a-key-0000"})


def test_testnet_uses_the_sandbox_and_live_the_real_endpoints():
    testnet = trading_exchange("binanceusdm", TradingMode.TESTNET, env=KEYS)
    live = trading_exchange("binanceusdm", TradingMode.LIVE, consent=True, env=KEYS)

    assert "testnet" in testnet.urls["api"]["fapiPrivate"]
    assert "testnet" not in live.urls["api"]["fapiPrivate"]
    assert testnet.apiKey == KEYS["QUANTUM_BINANCEUSDM_API_KEY"]


def test_keys_are_redacted_from_ccxts_log_lines(caplog):
    trading_exchange("binanceusdm", TradingMode.TESTNET, env=KEYS)
    logger = logging.getLogger("ccxt.base.exchange")

    with caplog.at_level(logging.DEBUG, logger="ccxt"):
        logger.debug("request headers %s", {"X-MBX-APIKEY": KEYS["QUANTUM_BINANCEUSDM_API_KEY"]})

    assert caplog.records and "tk-123456789" not in caplog.text and "***" in caplog.text
