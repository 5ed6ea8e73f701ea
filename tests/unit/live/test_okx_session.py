"""The same session code trading on okx (v5, USDT-margined swaps) beneath ccxt's real class:
amounts in contracts (0.01 BTC, 0.1 ETH) and positions converted back to base units,
conditional stops listed and cancelled as okx's algo orders, a balance whose equity
includes unrealised PnL, funding bills whose balChg is what was received, cross leverage
set per instrument and read back, long/short position mode switched to net, a crash or
a 50004 timeout recovered by client id (okx looks orders up by clOrdId, algo orders by
algoClOrdId) and a 51016 duplicate counted as sent."""

import logging

import ccxt
import pytest

from live.executor import fill_report
from live.orders import OrderIntent, amount_step, client_order_id
from live.router import PENDING, REJECTED, SENT, OrderRouter
from live.session import KILLED
from tests.unit.live.exchange_harness import SYMBOLS, keys, replay_frame, session
from tests.unit.live.fake_futures import Crash
from tests.unit.live.fake_okx import CT_VAL, OkxSwaps
from tests.unit.market.ccxt_fakes import fake_exchange

IDS = {"BTC": "BTC-USDT-SWAP", "ETH": "ETH-USDT-SWAP"}
PLACE = ("/api/v5/trade/batch-orders", "/api/v5/trade/order", "/api/v5/trade/order-algo")
BAR = 1_704_067_200_000


@pytest.fixture(scope="module")
def frame():
    return replay_frame()


def swaps(**kwargs) -> OkxSwaps:
    """The fake okx for a replayed session, with okx's maxMktSz (12,000 contracts): the
    harness trades about 4x equity per asset on a million, and its reversals (up to
    ~21,000 contracts) go as parts under the cap (live.orders)."""
    return OkxSwaps(**kwargs)


def posted(venue):
    return [r.params.get("algoClOrdId") or r.params["clOrdId"] for r in venue.received
            if r.method == "POST" and r.path in PLACE]


def base(venue, asset):
    """The venue's net position of ``asset`` in base units (okx holds contracts)."""
    return venue.positions.get(IDS[asset], 0.0) * CT_VAL[IDS[asset]]


def test_a_replayed_session_on_okx_agrees_with_its_model(tmp_path, frame):
    venue = swaps(fill_slippage=0.001)
    folder = tmp_path / "s"
    folder.mkdir()
    # over 08:00 UTC (bar 1920): funding, received on the short the model then holds. The
    # fake books realised PnL and fees in cash, so the model's 5% daily loss limit flattens
    # it some bars later (the other fakes keep their wallets and never get there).
    run, feed = session(folder, venue, frame, 1940, first=1906)

    state = run.run(feed.ticks, feed.start)

    assert state["status"] != KILLED
    book = state["account"]["book"]
    held = {a: book[a]["quantity"] + book[a]["working_quantity"] for a in SYMBOLS}
    reconciled = run.journal.rows("reconcile.jsonl")
    assert sum(any(r["positions"].values()) for r in reconciled) >= 10  # held for a while
    steps = {a: amount_step(run.executor.exchange, SYMBOLS[a]) for a in SYMBOLS}
    assert steps == pytest.approx({"BTC": 0.0001, "ETH": 0.001})  # 0.01 contract each
    assert held == {a: pytest.approx(base(venue, a), abs=steps[a]) for a in SYMBOLS}
    sent = [o for row in run.journal.rows("execution.jsonl") for o in row["orders"]]
    states = run.executor.router.states()
    assert sent and all(states[o["client_id"]]["state"] == SENT for o in sent)
    assert {o["leg"] for o in sent} >= {"entry", "stop_loss", "take_profit"}
    bodies = [r.params for r in venue.received if r.method == "POST" and r.path in PLACE]
    assert all(b["tdMode"] == "cross" and "posSide" not in b for b in bodies)
    entries = {o["client_id"]: o for o in sent if o["leg"] == "entry"}
    parts = [o for o in entries.values() if o["client_id"][-1].isdigit()]
    assert parts and all(o["amount"] <= venue.max_market_size for o in sent)  # split
    for b in bodies:  # sizes in contracts: the intent's amount, the base quantity / ctVal
        if b["clOrdId"] in entries:
            assert float(b["sz"]) == pytest.approx(entries[b["clOrdId"]]["amount"])
    stops = [o for o in venue.orders.values() if o["algo"]]
    assert stops and all(o["ordType"] == "conditional" and o["reduceOnly"] == "true"
                         and (o["slTriggerPx"] or o["tpTriggerPx"]) for o in stops)
    for inst in IDS.values():  # replaced stops were found and cancelled: one pair rests
        resting = [o for o in venue.open_orders(algo=True) if o["instId"] == inst]
        assert len(resting) <= 2
    assert any(r.path == "/api/v5/trade/cancel-algos" for r in venue.received)
    assert len(reconciled) == state["bars_done"]
    assert all(row["differences"] == [] for row in reconciled)
    ids = posted(venue)
    assert len(ids) == len(set(ids)) == len(sent)
    paid = {a: -sum(r["funding"] for r in run.journal.rows("ledger.jsonl")
                    if r["kind"] == "funding" and r["asset"] == a) for a in SYMBOLS}
    booked = {a: sum(r["funding"].get(a, 0.0) for r in reconciled) for a in SYMBOLS}
    # signs agree; the amounts to a step: funding falls in a bar whose fill the model holds
    # unrounded, the venue in whole 0.01 contracts (0.0001 BTC on ~65 BTC)
    assert any(paid.values()) and booked == pytest.approx(paid, rel=1e-5)
    bills = {b["instId"]: float(b["balChg"]) for b in venue.bills}
    assert booked["BTC"] > 0 and bills["BTC-USDT-SWAP"] == pytest.approx(booked["BTC"])
    fills = run.journal.rows("fills.jsonl")
    assert fills and [f["slippage_bps"] for f in fills] == pytest.approx([10.0] * len(fills))
    assert all(f["model_qty"] == pytest.approx(f["exchange_qty"], abs=1e-3) for f in fills)
    assert fill_report(fills)["all"]["exchange_fees"] > 0


@pytest.mark.parametrize("fault", ["crash_before", "crash_after"])
def test_a_crash_on_okx_is_recovered_by_client_order_id(tmp_path, frame, fault):
    venue = swaps(faults=[""] * 4 + [fault])
    folder = tmp_path / "s"
    folder.mkdir()
    run, feed = session(folder, venue, frame, 2420)
    with pytest.raises(Crash):
        run.run(feed.ticks, feed.start)
    crashed = posted(venue)[-1]

    again, feed = session(folder, venue, frame, 2420)
    state = again.run(feed.ticks, feed.start)

    ids = posted(venue)
    doubled = [c for c in set(ids) if ids.count(c) > 1]
    assert doubled == ([crashed] if fault == "crash_before" else [])  # the lost try, again
    assert sorted(set(ids)) == sorted(venue.orders)
    assert {row["state"] for row in again.executor.router.states().values()} == {SENT}
    assert state["bars_done"] == 20 and state["kill"] is None
    reconciled = again.journal.rows("reconcile.jsonl")
    assert all(r["differences"] == [] for r in reconciled)
    lookups = [r for r in venue.received if r.method == "GET" and r.path in (
        "/api/v5/trade/order", "/api/v5/trade/order-algo")]
    looked = [r.params.get("clOrdId") or r.params.get("algoClOrdId") for r in lookups]
    assert looked[0] == crashed and len(looked) == len(set(looked))  # once each, by client id
    kinds = {r.path for r in lookups if (r.params.get("clOrdId") or r.params.get(
        "algoClOrdId")) == crashed}
    leg = next(o for row in again.journal.rows("execution.jsonl") for o in row["orders"]
               if o["client_id"] == crashed)["leg"]
    assert kinds == {"/api/v5/trade/order" if leg == "entry" else "/api/v5/trade/order-algo"}


def intents() -> list[OrderIntent]:
    return [
        OrderIntent(client_order_id("run", BAR, 0, "entry"), "BTC/USDT:USDT", "BTC", "entry",
                    "buy", "market", 50.0),
        OrderIntent(client_order_id("run", BAR, 0, "stop_loss"), "BTC/USDT:USDT", "BTC",
                    "stop_loss", "sell", "market", 50.0, None, 39_000.0, reduce_only=True),
    ]


def router(venue, folder) -> OrderRouter:
    exchange = fake_exchange(venue, env=keys("okx"))
    exchange.load_markets()
    return OrderRouter(exchange, folder)


def test_a_50004_timeout_is_left_pending_and_recovery_finds_the_order_by_client_id(tmp_path):
    venue = OkxSwaps(faults=["timeout_after", "timeout_after"])
    sender = router(venue, tmp_path)

    first = sender.submit(intents())
    recovered = sender.recover()

    assert [o.state for o in first] == [PENDING] * 2
    assert all("RequestTimeout" in o.reason and "50004" in o.reason for o in first)
    assert [(o.state, o.order_id) for o in recovered] == [
        (SENT, venue.orders[i.client_id]["ordId" if i.leg == "entry" else "algoId"])
        for i in intents()]
    assert posted(venue) == [i.client_id for i in intents()]  # neither sent twice
    assert venue.positions == {"BTC-USDT-SWAP": 50.0}


def test_a_51016_duplicate_counts_as_sent(tmp_path):
    venue = OkxSwaps(faults=["timeout_after"])
    sender = router(venue, tmp_path)
    sender.submit(intents()[:1])  # accepted, answer lost: pending
    venue.inject("lookup", (200, {"code": "51603", "msg": "Order does not exist",
                                  "data": []}))  # okx's order detail lags the order

    again = sender.submit(intents()[:1])  # not found, re-sent: okx refuses the id (51016)

    assert again[0].state == SENT and again[0].order_id == \
        venue.orders[intents()[0].client_id]["ordId"]
    assert posted(venue) == [intents()[0].client_id] * 2
    assert venue.positions == {"BTC-USDT-SWAP": 50.0}


@pytest.mark.parametrize(("fault", "amount", "code", "error"), [
    ("no_margin", 30.0, "51008", "InsufficientFunds"),  # insufficient margin
    ("", 12_000.01, "51202", "InvalidOrder"),  # one order over maxMktSz: refused
])
def test_a_definite_refusal_is_rejected_with_okxs_reason(tmp_path, fault, amount, code,
                                                         error):
    venue = OkxSwaps(faults=[fault])
    order = OrderIntent(client_order_id("run", BAR, 1, "entry"), "ETH/USDT:USDT", "ETH",
                        "entry", "sell", "market", amount)

    first = router(venue, tmp_path).submit([order])
    again = router(venue, tmp_path).submit([order])

    assert first[0].state == REJECTED and error in first[0].reason and code in \
        first[0].reason
    assert again[0].state == REJECTED and posted(venue) == [order.client_id]
    assert venue.orders == {} and venue.positions == {}


def test_cross_leverage_and_net_mode_are_set_and_read_back_on_okx(tmp_path, frame):
    venue = swaps(pos_mode="long_short_mode")
    run, _ = session(tmp_path, venue, frame, 2410)

    assert run.executor.prepare(20) == {"BTC/USDT:USDT": 20, "ETH/USDT:USDT": 20}
    assert venue.pos_mode == "net_mode"
    assert venue.leverages == {(i, "cross"): 20 for i in IDS.values()}
    reads = [r.params for r in venue.received if r.path == "/api/v5/account/leverage-info"]
    assert sorted(p["instId"] for p in reads) == sorted(IDS.values())  # read back
    assert all(p["mgnMode"] == "cross" for p in reads)
    assert run.executor.prepare(20) == {"BTC/USDT:USDT": 20, "ETH/USDT:USDT": 20}  # again
    assert sum(r.path == "/api/v5/account/set-position-mode" for r in venue.received) == 1
    venue.max_leverage = 10
    with pytest.raises(ccxt.ExchangeError, match="59102"):
        run.executor.prepare(20)
    venue.leverages[("BTC-USDT-SWAP", "cross")] = 10
    exchange = fake_exchange(venue, env=keys("okx"))
    exchange.load_markets()
    held = exchange.fetch_leverage("BTC/USDT:USDT")
    assert (held["marginMode"], held["longLeverage"]) == ("cross", 10)


def test_okx_equity_is_the_balance_eq_which_includes_unrealised_pnl():
    from envs.account import Account
    from envs.data import MarketArrays
    from live.reconcile import reconcile
    from market.features import make_aligned_frame

    data = MarketArrays.from_aligned(make_aligned_frame(2000, ("BTC", "ETH")))
    held = Account.fresh(data, 1_000_000.0, 4, 1900)
    held.book["BTC"]["quantity"], held.book["ETH"]["quantity"] = 0.5, -3.0
    venue = OkxSwaps(positions={"BTC-USDT-SWAP": 50.0, "ETH-USDT-SWAP": -30.0},
                     entries={"BTC-USDT-SWAP": 39_000.0, "ETH-USDT-SWAP": 2_100.0},
                     cash=990_000.0)
    exchange = fake_exchange(venue, env=keys("okx"))
    exchange.load_markets()

    found = reconcile(exchange, SYMBOLS, held)

    assert found.differences == []
    assert found.positions == pytest.approx({"BTC": 0.5, "ETH": -3.0})  # contracts * ctVal
    assert found.unrealized == pytest.approx(0.5 * 1_000.0 + 3.0 * 100.0)
    assert found.equity == pytest.approx(990_000.0 + 800.0) == venue.equity()
    assert exchange.fetch_balance()["total"]["USDT"] == pytest.approx(990_800.0)  # eq


def test_an_okx_session_needs_the_passphrase_which_never_reaches_a_log(caplog):
    from live.venue import TradingMode, VenueError, trading_exchange

    env = {"QUANTUM_OKX_API_KEY": "ok-key-123456", "QUANTUM_OKX_SECRET": "ok-secret-654321"}
    with pytest.raises(VenueError, match="QUANTUM_OKX_PASSWORD"):
        trading_exchange("okx", TradingMode.TESTNET, env=env)

    env["QUANTUM_OKX_PASSWORD"] = "ok-pass-987654"
    testnet = trading_exchange("okx", TradingMode.TESTNET, env=env)
    assert testnet.password == "ok-pass-987654"
    assert testnet.headers.get("x-simulated-trading") == "1"  # okx's demo trading
    with caplog.at_level(logging.DEBUG, logger="ccxt"):
        logging.getLogger("ccxt.base.exchange").debug(
            "request headers %s", {"OK-ACCESS-PASSPHRASE": testnet.password})
    assert caplog.records and "ok-pass-987654" not in caplog.text and "***" in caplog.text
