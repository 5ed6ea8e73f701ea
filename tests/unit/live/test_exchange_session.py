"""A session trading on an exchange (live/executor.py): a replayed span through the paper
book with its orders sent to a stateful binanceusdm beneath ccxt's real class. The
exchange's positions are the truth each bar; a position the book does not know trips
the kill switch, which flattens on the exchange; a restart sends nothing twice."""

import ccxt
import pytest

from envs.config import EnvConfig
from live.executor import fill_report
from live.router import SENT
from live.session import KILLED, RUNNING, SessionSettings
from tests.unit.live.exchange_harness import IDS, KEYS, SYMBOLS, replay_frame, session
from tests.unit.live.fake_futures import FuturesVenue
from tests.unit.market.ccxt_fakes import fake_exchange


@pytest.fixture(scope="module")
def frame():
    return replay_frame()



def test_a_replayed_session_trades_on_the_exchange_and_agrees_with_its_model(tmp_path,
                                                                                frame):
    venue = FuturesVenue(fill_slippage=0.001)  # market orders pay 10 bps beyond the price
    folder = tmp_path / "s"
    folder.mkdir()
    run, feed = session(folder, venue, frame, 1940, first=1900)  # over 08:00 UTC: funding

    state = run.run(feed.ticks, feed.start)

    book = state["account"]["book"]
    held = {a: book[a]["quantity"] + book[a]["working_quantity"] for a in SYMBOLS}
    assert state["status"] != KILLED and any(held.values())
    # what the book holds plus the last bar's market orders, which the venue filled at once
    assert held == {a: pytest.approx(venue.positions.get(IDS[a], 0.0), abs=1e-3)
                    for a in SYMBOLS}
    sent = [o for row in run.journal.rows("execution.jsonl") for o in row["orders"]]
    states = run.executor.router.states()
    assert sent and all(states[o["client_id"]]["state"] == SENT for o in sent)
    assert {o["leg"] for o in sent} >= {"entry", "stop_loss", "take_profit"}
    reconciled = run.journal.rows("reconcile.jsonl")
    assert len(reconciled) == state["bars_done"]
    assert all(row["differences"] == [] for row in reconciled)  # model = exchange, to a step
    posted = [r.params.get("newClientOrderId") or r.params.get("clientAlgoId")
              for r in venue.received if r.method == "POST"]
    assert len(posted) == len(set(posted))  # no order sent twice
    fills = run.journal.rows("fills.jsonl")
    bars = run.journal.rows("execution.jsonl")
    traded = [{o["asset"] for o in row["orders"] if o["leg"] == "entry"} for row in bars]
    assert len(fills) == sum(map(len, traded[:-1]))  # the last bar's settle next bar
    # the venue takes at most MARKET_LOT_SIZE (ETH 2,000) a market order: bigger rebalances
    # went as parts under it, and the position still matches the model's
    parts = [o for o in sent if o["client_id"][-1].isdigit()]
    assert parts and all(o["amount"] <= venue.max_qty[(IDS[o["asset"]], "MARKET_LOT_SIZE")]
                         for o in sent)
    assert all(f["model_qty"] == pytest.approx(f["exchange_qty"], abs=1e-3) for f in fills)
    assert [f["slippage_bps"] for f in fills] == pytest.approx([10.0] * len(fills))
    assert all(f["exchange_fee"] > 0 and f["model_cost_bps"] > 0 for f in fills)
    paid = {a: -sum(r["funding"] for r in run.journal.rows("ledger.jsonl")
                    if r["kind"] == "funding" and r["asset"] == a) for a in SYMBOLS}
    booked = {a: sum(r["funding"].get(a, 0.0) for r in reconciled) for a in SYMBOLS}
    assert any(paid.values()) and booked == pytest.approx(paid, rel=1e-9)
    report = fill_report(fills)
    assert report["all"]["fills"] == len(fills) and report["all"]["slippage_bps"] == \
        pytest.approx(10.0)
    assert set(report) == {"all", "BTC", "ETH"}
    assert report["all"]["exchange_fees"] == pytest.approx(
        report["BTC"]["exchange_fees"] + report["ETH"]["exchange_fees"])


def test_a_restarted_session_resumes_without_sending_any_order_twice(tmp_path, frame):
    venue = FuturesVenue()
    folder = tmp_path / "s"
    folder.mkdir()
    first, feed = session(folder, venue, frame, 2420)
    first.run(feed.ticks, feed.start)

    again, feed = session(folder, venue, frame, 2440)
    state = again.run(feed.ticks, feed.start)

    assert state["bars_done"] == 40
    posted = [r.params.get("newClientOrderId") or r.params.get("clientAlgoId")
              for r in venue.received if r.method == "POST"]
    assert len(posted) == len(set(posted))


def test_a_position_the_book_does_not_know_trips_the_kill_switch_and_is_flattened(tmp_path,
                                                                                   frame):
    venue = FuturesVenue()
    folder = tmp_path / "s"
    folder.mkdir()
    run, feed = session(folder, venue, frame, 2410)
    assert run.run(feed.ticks, feed.start)["status"] == RUNNING

    venue.positions["BTCUSDT"] = venue.positions.get("BTCUSDT", 0.0) + 5.0  # a manual trade
    run, feed = session(folder, venue, frame, 2440)
    state = run.run(feed.ticks, feed.start)

    assert state["kill"]["rule"] == "reconciliation" and state["status"] == KILLED
    assert all(abs(venue.positions.get(i, 0.0)) < 1e-9 for i in IDS.values())
    diffs = [d for row in run.journal.rows("reconcile.jsonl") for d in row["differences"]]
    assert diffs and diffs[0]["asset"] == "BTC"


def test_cross_margin_and_leverage_are_set_and_verified_per_symbol(frame, tmp_path):
    venue = FuturesVenue(margin_types={"ETHUSDT": "ISOLATED"})
    run, _ = session(tmp_path, venue, frame, 2410)

    assert run.executor.prepare(20) == {"BTC/USDT:USDT": 20, "ETH/USDT:USDT": 20}
    assert venue.margin_types["ETHUSDT"] == "CROSSED" and "BTCUSDT" not in venue.margin_types
    venue.max_leverage = 10
    with pytest.raises(ccxt.ExchangeError, match="asked for 20x leverage, the exchange set 10x"):
        run.executor.prepare(20)


def test_a_testnet_session_gets_an_executor_on_cross_margin_at_its_leverage(tmp_path):
    from envs.market_spec import MarketSpec
    from live.run import _executor

    venue = FuturesVenue()
    config = EnvConfig()
    settings = SessionSettings(session_id="t", model_path="-", market={},
                               env=config.model_dump(mode="json"), mode="testnet")
    market = MarketSpec(data_dir=str(tmp_path), exchange="binanceusdm",
                        symbols=tuple(SYMBOLS.values()))
    paper = settings.model_copy(update={"mode": "paper"})

    executor = _executor(settings, market, tuple(SYMBOLS), config, tmp_path, False,
                         fake_exchange(venue, env=KEYS), fresh=True)

    assert executor.symbols == SYMBOLS and executor.router.path.parent == tmp_path
    assert venue.leverages == {"BTCUSDT": 20, "ETHUSDT": 20}
    assert _executor(paper, market, tuple(SYMBOLS), config, tmp_path, False, None, True) is None


def test_an_exchange_that_stops_answering_is_survived_then_trips_the_kill_switch(tmp_path,
                                                                                  frame):
    from tests.unit.market.ccxt_fakes import error

    venue = FuturesVenue()
    folder = tmp_path / "s"
    folder.mkdir()
    venue.inject("positions", error("binanceusdm", "too_many_requests_429"), after=3)
    run, feed = session(folder, venue, frame, 2420)
    state = run.run(feed.ticks, feed.start)
    rows = run.journal.rows("reconcile.jsonl")

    assert state["status"] == RUNNING and state["kill"] is None
    assert [bool(r.get("error")) for r in rows[2:6]] == [False, True, False, False]
    assert "429 Too Many Requests" in rows[3]["error"]

    venue.inject("positions", *[error("binanceusdm", "too_many_requests_429")] * 10)
    run, feed = session(folder, venue, frame, 2440)
    state = run.run(feed.ticks, feed.start)
    assert state["kill"]["rule"] == "exchange_errors" and state["kill"]["value"] == 5


def test_partly_filled_limit_clips_are_cancelled_next_bar_and_the_exchange_is_adopted(
        tmp_path, frame, caplog):
    from envs.config import ExecStyle

    venue = FuturesVenue(limit_fill=0.5)  # every post-only clip half fills, the rest rests
    folder = tmp_path / "s"
    folder.mkdir()
    run, feed = session(folder, venue, frame, 2430, kill_fraction=1.0,
                        style=int(ExecStyle.LIMIT))

    state = run.run(feed.ticks, feed.start)

    sent = [o for row in run.journal.rows("execution.jsonl") for o in row["orders"]
            if o["leg"] == "entry"]
    assert sent and all(o["type"] == "limit" and o["post_only"] for o in sent)
    last = {o["client_id"] for o in run.journal.rows("execution.jsonl")[-1]["orders"]}
    resting = {o["clientOrderId"] for o in venue.open_orders(algo=False)}
    assert resting <= last  # older clips were cancelled at the next bar
    fills = run.journal.rows("fills.jsonl")
    assert fills and all(f["exchange_price"] > 0 for f in fills)
    differences = [d for r in run.journal.rows("reconcile.jsonl") for d in r["differences"]]
    assert differences and state["status"] == RUNNING  # recorded, alerted, adopted
    assert "adopted the exchange's" in caplog.text


@pytest.mark.parametrize("fault", ["crash_before", "crash_after"])
def test_a_crash_mid_twap_resumes_the_schedule_without_a_lost_or_doubled_slice(tmp_path, frame,
                                                                              fault):
    """The process dies while sending a TWAP slice (before the venue has it, or after it
    accepted it); the restarted session recovers the slice by its client id and goes on."""
    from envs.config import ExecStyle
    from tests.unit.live.fake_futures import Crash

    venue = FuturesVenue(faults=[""] * 7 + [fault])
    folder = tmp_path / "s"
    folder.mkdir()
    run, feed = session(folder, venue, frame, 2430, style=int(ExecStyle.TWAP))
    with pytest.raises(Crash):
        run.run(feed.ticks, feed.start)

    again, feed = session(folder, venue, frame, 2430, style=int(ExecStyle.TWAP))
    state = again.run(feed.ticks, feed.start)

    posted = [r.params.get("newClientOrderId") or r.params.get("clientAlgoId")
              for r in venue.received if r.method == "POST"]
    doubled = [c for c in set(posted) if posted.count(c) > 1]
    assert len(doubled) == (1 if fault == "crash_before" else 0)  # only a lost try, again
    assert sorted(set(posted)) == sorted(venue.orders)  # every intent reached the venue once
    states = again.executor.router.states()
    assert {row["state"] for row in states.values()} == {SENT}
    assert state["bars_done"] == 30 and state["kill"] is None
    reconciled = again.journal.rows("reconcile.jsonl")
    assert len(reconciled) == 30 and all(r["differences"] == [] for r in reconciled)
    book = state["account"]["book"]
    last = [o for o in again.journal.rows("execution.jsonl")[-1]["orders"]
            if o["leg"] == "entry"]
    for a in SYMBOLS:  # the exchange = the book + the slice sent after the last bar
        slice_ = sum(o["amount"] * (1 if o["side"] == "buy" else -1) for o in last
                     if o["asset"] == a)
        assert venue.positions.get(IDS[a], 0.0) == pytest.approx(
            book[a]["quantity"] + slice_, abs=1e-9)
