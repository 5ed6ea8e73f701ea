"""Reconciliation (live/reconcile.py) with a stateful binanceusdm beneath ccxt's real
class: the exchange's positions and balance are the truth, rounding is not a difference,
and the local account adopts what the exchange holds."""

import pytest

from envs.account import Account
from envs.data import MarketArrays
from live.reconcile import adopt, reconcile
from market.features import make_aligned_frame
from tests.unit.live.fake_futures import FuturesVenue
from tests.unit.market.ccxt_fakes import fake_exchange

KEYS = {"QUANTUM_BINANCEUSDM_API_KEY": "test-key", "QUANTUM_BINANCEUSDM_SECRET": "test-secret"}
SYMBOLS = {"BTC": "BTC/USDT:USDT", "ETH": "ETH/USDT:USDT"}


@pytest.fixture(scope="module")
def data():
    return MarketArrays.from_aligned(make_aligned_frame(2000, ("BTC", "ETH")))


def account(data, btc=0.0, eth=0.0) -> Account:
    held = Account.fresh(data, 1_000_000.0, 4, 1900)
    held.book["BTC"]["quantity"], held.book["ETH"]["quantity"] = btc, eth
    return held


def exchange(venue):
    ex = fake_exchange(venue, env=KEYS)
    ex.load_markets()
    return ex


def test_matching_books_have_no_difference_and_rounding_is_not_one(data):
    venue = FuturesVenue(positions={"BTCUSDT": 0.5, "ETHUSDT": -3.0},
                         entries={"BTCUSDT": 39_000.0, "ETHUSDT": 2_100.0})

    found = reconcile(exchange(venue), SYMBOLS, account(data, 0.5004, -3.0))

    assert found.differences == []  # 0.0004 BTC is under one 0.001 step
    assert found.positions == {"BTC": 0.5, "ETH": -3.0}
    assert found.unrealized == pytest.approx(0.5 * 1_000 + 3.0 * 100)
    assert found.equity == pytest.approx(1_000_000 + 800)


def test_a_position_the_book_does_not_know_is_a_difference_past_the_kill_fraction(data):
    venue = FuturesVenue(positions={"BTCUSDT": 2.0})

    found = reconcile(exchange(venue), SYMBOLS, account(data))

    (diff,) = found.differences
    assert (diff.asset, diff.local, diff.exchange) == ("BTC", 0.0, 2.0)
    assert diff.notional == pytest.approx(80_000.0)
    assert found.worst_fraction() == pytest.approx(0.08)
    assert found.breached(0.05) and not found.breached(0.10)


def test_the_account_adopts_the_exchanges_positions_entries_and_wallet(data):
    venue = FuturesVenue(positions={"BTCUSDT": 0.5}, entries={"BTCUSDT": 39_000.0},
                         wallet=999_000.0)
    held = account(data, 0.4, 1.0)

    adopt(held, reconcile(exchange(venue), SYMBOLS, held))

    assert held.book["BTC"]["quantity"] == 0.5 and held.book["BTC"]["entry_price"] == 39_000
    assert held.book["ETH"]["quantity"] == 0.0 and held.book["ETH"]["entry_price"] == 0.0
    assert held.values["wallet"] == pytest.approx(999_000.0)
    assert held.values["equity"] == pytest.approx(999_500.0)
    _, book, _, _ = held.to_state(data)  # still a valid kernel state
    assert book[0, 0] == 0.5
