"""The same session code trading on bybit (v5 unified account) beneath ccxt's real class:
orders by orderLinkId, conditional stops, reconciliation with a wallet balance that
excludes unrealised PnL, funding whose history sign is 'paid', leverage read back, and a
crash after the venue accepted an order recovered by client id from the closed-order
history (bybit's fetch_order cannot look an order up by client id)."""

import pytest

from live.executor import fill_report
from live.orders import amount_step
from live.router import SENT
from live.session import KILLED
from tests.unit.live.exchange_harness import SYMBOLS, keys, replay_frame, session
from tests.unit.live.fake_bybit import BybitFutures
from tests.unit.live.fake_futures import Crash
from tests.unit.market.ccxt_fakes import fake_exchange

IDS = {"BTC": "BTCUSDT", "ETH": "ETHUSDT"}


@pytest.fixture(scope="module")
def frame():
    return replay_frame()


def posted(venue):
    return [r.params["orderLinkId"] for r in venue.received
            if r.path == "/v5/order/create"]


def test_a_replayed_session_on_bybit_agrees_with_its_model(tmp_path, frame):
    venue = BybitFutures(fill_slippage=0.001)
    folder = tmp_path / "s"
    folder.mkdir()
    run, feed = session(folder, venue, frame, 1940, first=1900)  # over 08:00 UTC: funding

    state = run.run(feed.ticks, feed.start)

    assert state["status"] != KILLED
    book = state["account"]["book"]
    held = {a: book[a]["quantity"] + book[a]["working_quantity"] for a in SYMBOLS}
    assert any(held.values())
    steps = {a: amount_step(run.executor.exchange, SYMBOLS[a]) for a in SYMBOLS}
    assert steps["ETH"] == 0.01  # bybit's ETH step (binanceusdm's is 0.001)
    assert held == {a: pytest.approx(venue.positions.get(IDS[a], 0.0), abs=steps[a])
                    for a in SYMBOLS}
    sent = [o for row in run.journal.rows("execution.jsonl") for o in row["orders"]]
    states = run.executor.router.states()
    assert sent and all(states[o["client_id"]]["state"] == SENT for o in sent)
    assert {o["leg"] for o in sent} >= {"entry", "stop_loss", "take_profit"}
    kinds = {"market": "Market", "limit": "Limit"}  # over maxMktOrderQty: sent as parts
    assert any(o["client_id"][-1].isdigit() for o in sent)
    assert all(o["amount"] <= venue.max_qty[(IDS[o["asset"]], kinds[o["type"]])] for o in sent)
    stops = [o for o in venue.orders.values() if o["stopOrderType"]]
    assert stops and all(o["reduceOnly"] and o["triggerPrice"] for o in stops)
    reconciled = run.journal.rows("reconcile.jsonl")
    assert len(reconciled) == state["bars_done"]
    assert all(row["differences"] == [] for row in reconciled)
    ids = posted(venue)
    assert len(ids) == len(set(ids)) == len(sent)
    paid = {a: -sum(r["funding"] for r in run.journal.rows("ledger.jsonl")
                    if r["kind"] == "funding" and r["asset"] == a) for a in SYMBOLS}
    booked = {a: sum(r["funding"].get(a, 0.0) for r in reconciled) for a in SYMBOLS}
    assert any(paid.values()) and booked == pytest.approx(paid, rel=1e-9)  # signs agree
    fills = run.journal.rows("fills.jsonl")
    assert fills and [f["slippage_bps"] for f in fills] == pytest.approx([10.0] * len(fills))
    assert fill_report(fills)["all"]["exchange_fees"] > 0


@pytest.mark.parametrize("fault", ["crash_before", "crash_after"])
def test_a_crash_on_bybit_is_recovered_by_order_link_id(tmp_path, frame, fault):
    venue = BybitFutures(faults=[""] * 4 + [fault])
    folder = tmp_path / "s"
    folder.mkdir()
    run, feed = session(folder, venue, frame, 2420)
    with pytest.raises(Crash):
        run.run(feed.ticks, feed.start)

    again, feed = session(folder, venue, frame, 2420)
    state = again.run(feed.ticks, feed.start)

    ids = posted(venue)
    doubled = [c for c in set(ids) if ids.count(c) > 1]
    assert len(doubled) == (1 if fault == "crash_before" else 0)  # only the lost try, again
    assert sorted(set(ids)) == sorted(venue.orders)
    assert {row["state"] for row in again.executor.router.states().values()} == {SENT}
    assert state["bars_done"] == 20 and state["kill"] is None
    reconciled = again.journal.rows("reconcile.jsonl")
    assert all(r["differences"] == [] for r in reconciled)
    history = [r for r in venue.received if r.path == "/v5/order/history"]
    assert fault == "crash_before" or history  # the accepted order was found among done ones


def test_cross_margin_and_leverage_are_set_and_read_back_on_bybit(tmp_path, frame):
    venue = BybitFutures()
    run, _ = session(tmp_path, venue, frame, 2410)

    assert run.executor.prepare(20) == {"BTC/USDT:USDT": 20, "ETH/USDT:USDT": 20}
    assert venue.margin_mode == "REGULAR_MARGIN"  # bybit's name for cross, account-wide
    assert run.executor.prepare(20) == {"BTC/USDT:USDT": 20, "ETH/USDT:USDT": 20}  # no-ops
    venue.leverages["BTCUSDT"] = 10
    exchange = fake_exchange(venue, env=keys("bybit"))
    exchange.load_markets()
    assert exchange.fetch_leverage("BTC/USDT:USDT")["longLeverage"] == 10


def test_bybit_equity_is_its_wallet_plus_unrealised_pnl():
    from envs.account import Account
    from envs.data import MarketArrays
    from live.reconcile import reconcile
    from market.features import make_aligned_frame

    data = MarketArrays.from_aligned(make_aligned_frame(2000, ("BTC", "ETH")))
    held = Account.fresh(data, 1_000_000.0, 4, 1900)
    held.book["BTC"]["quantity"], held.book["ETH"]["quantity"] = 0.5, -3.0
    venue = BybitFutures(positions={"BTCUSDT": 0.5, "ETHUSDT": -3.0},
                         entries={"BTCUSDT": 39_000.0, "ETHUSDT": 2_100.0}, wallet=990_000.0)
    exchange = fake_exchange(venue, env=keys("bybit"))
    exchange.load_markets()

    found = reconcile(exchange, SYMBOLS, held)

    assert found.differences == []
    assert found.unrealized == pytest.approx(0.5 * 1_000.0 + 3.0 * 100.0)
    assert found.equity == pytest.approx(990_000.0 + 800.0)  # the balance total is 990,000
    assert exchange.fetch_balance()["total"]["USDT"] == pytest.approx(990_000.0)
