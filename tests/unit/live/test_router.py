"""Idempotent sending (live/router.py) against a stateful binanceusdm beneath ccxt's real
class: a crash before the send, after the venue accepted the order, or a timeout after
it accepted it, never duplicates or loses an order once the router has recovered."""

import pytest

from live.orders import OrderIntent, client_order_id
from live.router import PENDING, REJECTED, SENT, OrderRouter
from tests.unit.live.fake_futures import Crash, FuturesVenue
from tests.unit.market.ccxt_fakes import error, fake_exchange

KEYS = {"QUANTUM_BINANCEUSDM_API_KEY": "test-key", "QUANTUM_BINANCEUSDM_SECRET": "test-secret"}
BAR = 1_704_067_200_000


def intents() -> list[OrderIntent]:
    return [
        OrderIntent(client_order_id("run", BAR, 0, "entry"), "BTC/USDT:USDT", "BTC", "entry",
                    "buy", "market", 0.5),
        OrderIntent(client_order_id("run", BAR, 1, "entry"), "ETH/USDT:USDT", "ETH", "entry",
                    "sell", "market", 3.0),
        OrderIntent(client_order_id("run", BAR, 0, "stop_loss"), "BTC/USDT:USDT", "BTC",
                    "stop_loss", "sell", "market", 0.5, None, 39_000.0, reduce_only=True),
    ]


def router(venue, folder) -> OrderRouter:
    """A fresh process: a new ccxt instance and router on the same venue and folder."""
    exchange = fake_exchange(venue, env=KEYS)
    exchange.load_markets()
    return OrderRouter(exchange, folder)


def sent_orders(venue) -> list[str]:
    return [r.params.get("newClientOrderId") or r.params.get("clientAlgoId")
            for r in venue.received
            if r.method == "POST" and r.path in ("/fapi/v1/order", "/fapi/v1/algoOrder")]


def test_a_bar_is_sent_once_and_submitting_it_again_sends_nothing(tmp_path):
    venue = FuturesVenue()

    first = router(venue, tmp_path).submit(intents())
    again = router(venue, tmp_path).submit(intents())

    assert [o.state for o in first] == [SENT] * 3 == [o.state for o in again]
    assert sent_orders(venue) == [i.client_id for i in intents()]
    assert venue.positions == {"BTCUSDT": 0.5, "ETHUSDT": -3.0}


@pytest.mark.parametrize("fault", ["crash_before", "crash_after"])
@pytest.mark.parametrize("at", [0, 1, 2])
def test_a_crash_at_any_order_loses_and_duplicates_nothing_after_recovery(tmp_path, fault, at):
    venue = FuturesVenue(faults=[""] * at + [fault])

    with pytest.raises(Crash):
        router(venue, tmp_path).submit(intents())
    restarted = router(venue, tmp_path)
    recovered = restarted.recover()
    rest = restarted.submit(intents())

    assert sorted(venue.orders) == sorted(i.client_id for i in intents())
    assert venue.positions == {"BTCUSDT": 0.5, "ETHUSDT": -3.0}
    assert [o.state for o in recovered] == [SENT] * (3 - at)  # the bar's rest, journaled
    resent = sent_orders(venue).count(intents()[at].client_id)
    assert resent == (2 if fault == "crash_before" else 1)  # the first try never arrived
    assert all(sent_orders(venue).count(i.client_id) == 1 for i in intents()[at + 1:])
    assert all(o.state == SENT for o in rest)
    assert {row["state"] for row in restarted.states().values()} == {SENT}


def test_a_timeout_after_the_venue_accepted_leaves_it_pending_until_recovery_finds_it(tmp_path):
    venue = FuturesVenue(faults=["timeout_after"])
    sender = router(venue, tmp_path)

    first = sender.submit(intents()[:1])
    recovered = sender.recover()

    assert first[0].state == PENDING and "RequestTimeout" in first[0].reason
    assert recovered[0].state == SENT and recovered[0].order_id == "1"
    assert sent_orders(venue) == [intents()[0].client_id]
    assert venue.positions == {"BTCUSDT": 0.5}


def test_a_pending_intent_resent_into_a_duplicate_id_refusal_counts_as_sent(tmp_path):
    venue = FuturesVenue(faults=["timeout_after"])
    sender = router(venue, tmp_path)
    sender.submit(intents()[:1])  # accepted, answer lost: pending

    again = sender.submit(intents()[:1])  # no recovery first: the venue refuses the id

    assert again[0].state == SENT
    assert venue.positions == {"BTCUSDT": 0.5}


def test_a_refused_order_is_rejected_with_the_reason_and_not_retried(tmp_path):
    venue = FuturesVenue()
    bad = OrderIntent(client_order_id("run", BAR, 2, "entry"), "BTC/USDT:USDT", "BTC",
                      "entry", "buy", "market", 0.5)
    venue.inject("order", (400, {"code": -2019, "msg": "Margin is insufficient."}))

    first = router(venue, tmp_path).submit([bad])
    again = router(venue, tmp_path).submit([bad])

    assert first[0].state == REJECTED and "Margin is insufficient" in first[0].reason
    assert again[0].state == REJECTED and len(sent_orders(venue)) == 1


@pytest.mark.parametrize("answer", [
    error("binanceusdm", "too_many_requests_429"),
    (503, {"code": -1001, "msg": "Internal error; unable to process your request. Please try "
                                 "again."}),
])
def test_a_rate_limit_or_maintenance_answer_leaves_the_order_pending_then_sent_once(tmp_path,
                                                                                     answer):
    venue = FuturesVenue()
    venue.inject("order", answer)
    sender = router(venue, tmp_path)

    first = sender.submit(intents()[:1])
    later = sender.recover()

    assert first[0].state == PENDING and first[0].reason
    assert later[0].state == SENT
    assert sorted(venue.orders) == [intents()[0].client_id]
    assert venue.positions == {"BTCUSDT": 0.5}
