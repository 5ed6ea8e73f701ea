"""Order translation (live/orders.py): the book's working orders become exchange orders
with deterministic ids, ccxt's rounding, the market's minimums and pre-trade caps; sent
through ccxt's real binanceusdm class, they are the native requests the venue expects."""

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from envs.config import EnvConfig, ExecStyle
from envs.core import layout as L
from envs.core.params import pack_params
from live.orders import (
    MAX_PARTS,
    client_order_id,
    planned_share,
    protective_orders,
    split_amount,
    translate,
)
from tests.unit.market.ccxt_fakes import BinanceVenue, fake_exchange

SYMBOLS = {"BTC": "BTC/USDT:USDT", "ETH": "ETH/USDT:USDT"}
KEYS = {"QUANTUM_BINANCEUSDM_API_KEY": "test-key", "QUANTUM_BINANCEUSDM_SECRET": "test-secret"}
BAR = 1_704_067_200_000
CONFIG = EnvConfig()
PARAMS = pack_params(CONFIG, tuple(SYMBOLS))


class OrderVenue(BinanceVenue):
    """The fake binanceusdm, also accepting new orders (echoed back as NEW)."""

    def routes(self) -> dict[str, Any]:
        return {**super().routes(), "/fapi/v1/order": self._new_order,
                "/fapi/v1/algoOrder": self._new_algo_order}

    def _new_algo_order(self, p: dict[str, str]) -> tuple[int, Any]:
        """Conditional orders (stop and take-profit markets): Binance's algo service."""
        return 200, {"algoId": len(self.received), "clientAlgoId": p["clientAlgoId"],
                     "algoType": p["algoType"], "orderType": p["type"], "symbol": p["symbol"],
                     "side": p["side"], "positionSide": "BOTH", "timeInForce": "GTC",
                     "quantity": p["quantity"], "algoStatus": "NEW",
                     "triggerPrice": p["triggerPrice"], "price": "0",
                     "reduceOnly": p.get("reduceOnly") == "true", "createTime": BAR,
                     "updateTime": BAR}

    def _new_order(self, p: dict[str, str]) -> tuple[int, Any]:
        return 200, {"orderId": len(self.received), "symbol": p["symbol"], "status": "NEW",
                     "clientOrderId": p["newClientOrderId"], "price": p.get("price", "0"),
                     "avgPrice": "0", "origQty": p["quantity"], "executedQty": "0",
                     "cumQuote": "0", "timeInForce": p.get("timeInForce", "GTC"),
                     "type": p["type"], "reduceOnly": p.get("reduceOnly") == "true",
                     "side": p["side"], "stopPrice": p.get("stopPrice", "0"),
                     "updateTime": BAR}


@pytest.fixture
def exchange():
    venue = OrderVenue()
    ex = fake_exchange(venue, env=KEYS)
    ex.load_markets()
    return ex


def market(close=(40_000.0, 2_000.0)) -> np.ndarray:
    mkt = np.zeros((3, 2, L.N_MKT + 2))
    mkt[:, :, L.M_CLOSE] = close
    mkt[:, :, L.M_NEXT_EVENT] = np.inf
    return mkt


def book(*rows) -> np.ndarray:
    """Rows of (qty, remain, style, bars_left, clip, limit_px, sl, tp) per asset."""
    out = np.zeros((len(rows), L.N_BOOK))
    slots = (L.QTY, L.REMAIN, L.STYLE, L.BARS_LEFT, L.CLIP, L.LIMIT_PX, L.SL_PX, L.TP_PX)
    for a, row in enumerate(rows):
        for slot, value in zip(slots, row, strict=False):
            out[a, slot] = value
    return out


def test_client_order_ids_are_deterministic_short_alphanumeric_and_distinct():
    ids = {client_order_id(run, bar, a, leg)
           for run in ("run-a", "run-b") for bar in (BAR, BAR + 60_000)
           for a in (0, 1) for leg in ("entry", "stop_loss", "take_profit", "flatten")}

    assert len(ids) == 2 * 2 * 2 * 4
    assert all(re.fullmatch(r"[a-z0-9]{1,32}", i) for i in ids)
    assert client_order_id("run-a", BAR, 1, "entry") == client_order_id("run-a", BAR, 1, "entry")


def test_each_style_sends_the_share_the_simulator_executes_next_bar(exchange):
    rows = book((0.0, 0.5, ExecStyle.MARKET, 1),
                (0.0, -3.0, ExecStyle.TWAP, 3))

    orders = translate(exchange, "run", BAR, SYMBOLS, rows, market(), PARAMS, 1, CONFIG, 1e6)

    btc, eth = orders.orders
    assert (btc.side, btc.type, btc.amount, btc.price) == ("buy", "market", 0.5, None)
    assert (eth.side, eth.type, eth.amount) == ("sell", "market", 1.0)
    assert btc.client_id == client_order_id("run", BAR, 0, "entry")
    assert not orders.skipped and not orders.cut


def test_a_limit_order_is_one_post_only_clip_at_the_books_price_rounded(exchange):
    rows = book((0.0, 0.9, ExecStyle.LIMIT, 4, 0.3004, 39_990.04))

    (order,) = translate(exchange, "run", BAR, dict(list(SYMBOLS.items())[:1]), rows,
                         market()[:, :1], PARAMS, 1, CONFIG, 1e6).orders

    assert (order.type, order.post_only, order.amount, order.price) == \
        ("limit", True, 0.3, 39_990.0)


def test_a_funding_aware_order_waits_as_the_kernel_waits():
    rows = book((0.0, 0.5, ExecStyle.FUNDING_AWARE, 1))
    mkt = market()[:, :1]
    mkt[:, 0, L.M_FUNDING_LAST] = 1e-4  # longs pay
    mkt[:, 0, L.M_NEXT_EVENT] = 1.0  # in one bar

    assert planned_share(rows, mkt, PARAMS, 0, 1) == 0.0
    mkt[:, 0, L.M_FUNDING_LAST] = -1e-4  # longs are paid: no reason to wait
    assert planned_share(rows, mkt, PARAMS, 0, 1) == 0.5


def test_orders_under_the_markets_minimums_are_skipped_with_the_reason(exchange):
    rows = book((0.0, 0.0004, ExecStyle.MARKET, 1),  # under 0.001 BTC
                (0.0, 0.004, ExecStyle.MARKET, 1))  # 8 USDT: under the 100 USDT minimum

    orders = translate(exchange, "run", BAR, SYMBOLS, rows, market(), PARAMS, 1, CONFIG, 1e6)

    assert orders.orders == []
    assert [s.asset for s in orders.skipped] == ["BTC", "ETH"]
    assert "minimum amount" in orders.skipped[0].reason and "0.001" in orders.skipped[0].reason
    assert "notional" in orders.skipped[1].reason


def test_an_order_past_the_per_asset_budget_is_cut_before_it_leaves(exchange):
    budget = CONFIG.limits.max_concentration * CONFIG.limits.max_leverage * 1e6
    rows = book((1.0, 2 * budget / 40_000.0, ExecStyle.MARKET, 1))

    orders = translate(exchange, "run", BAR, dict(list(SYMBOLS.items())[:1]), rows,
                       market()[:, :1], PARAMS, 1, CONFIG, 1e6)

    amount = sum(order.amount for order in orders.orders)
    assert (1.0 + amount) * 40_000.0 == pytest.approx(budget, abs=40.0)
    assert orders.cut and "cut" in orders.cut[0]


def test_sent_through_ccxt_the_intents_are_binances_native_orders(exchange):
    rows = book((0.0, 0.9, ExecStyle.LIMIT, 4, 0.3, 39_990.0, 39_000.0, 42_000.0))
    venue = exchange.session.venue
    entry = translate(exchange, "run", BAR, dict(list(SYMBOLS.items())[:1]), rows,
                      market()[:, :1], PARAMS, 1, CONFIG, 1e6).orders
    stops = protective_orders(exchange, "run", BAR, dict(list(SYMBOLS.items())[:1]), rows,
                              np.array([0.25]), np.array([40_000.0])).orders

    for intent in (*entry, *stops):
        exchange.create_order(intent.symbol, intent.type, intent.side, intent.amount,
                              intent.price, intent.params())

    (sent,) = [r.params for r in venue.received if r.path == "/fapi/v1/order"]
    algo = [r.params for r in venue.received if r.path == "/fapi/v1/algoOrder"]
    assert (sent["type"], sent["side"], sent["quantity"], sent["price"], sent["timeInForce"]) \
        == ("LIMIT", "BUY", "0.3", "39990", "GTX")
    assert sent["newClientOrderId"] == client_order_id("run", BAR, 0, "entry")
    assert [(p["type"], p["side"], p["quantity"], p["triggerPrice"]) for p in algo] == [
        ("STOP_MARKET", "SELL", "0.25", "39000"), ("TAKE_PROFIT_MARKET", "SELL", "0.25", "42000")]
    assert all(p["reduceOnly"] == "true" and p["algoType"] == "CONDITIONAL" for p in algo)
    assert [p["clientAlgoId"] for p in algo] == [
        client_order_id("run", BAR, 0, leg) for leg in ("stop_loss", "take_profit")]


def test_on_a_venue_with_contracts_amounts_are_sent_in_contracts():
    """okx: one BTC-USDT-SWAP contract is 0.01 BTC, one ETH contract 0.1 ETH; the book's
    base quantities become contract counts, steps and minimums are the venue's."""
    from live.orders import amount_step, contract_size
    from tests.unit.market.ccxt_fakes import OkxVenue

    okx = fake_exchange(OkxVenue())
    okx.load_markets()
    rows = book((0.0, 0.5, ExecStyle.MARKET, 1), (0.0, -3.0, ExecStyle.TWAP, 3))

    btc, eth = translate(okx, "run", BAR, SYMBOLS, rows, market(), PARAMS, 1, CONFIG,
                         1e6).orders

    assert (contract_size(okx, SYMBOLS["BTC"]), contract_size(okx, SYMBOLS["ETH"])) == \
        (0.01, 0.1)
    assert (btc.side, btc.amount) == ("buy", 50.0)  # 0.5 BTC
    assert (eth.side, eth.amount) == ("sell", 10.0)  # a third of 3 ETH
    assert amount_step(okx, SYMBOLS["BTC"]) == pytest.approx(0.0001)  # 0.01 contract
    (tiny,) = translate(okx, "run", BAR, {"BTC": SYMBOLS["BTC"]},
                        book((0.0, 0.00005, ExecStyle.MARKET, 1)), market()[:, :1], PARAMS, 1,
                        CONFIG, 1e6).skipped
    assert "under the market's minimum" in tiny.reason or "precision" in tiny.reason


def test_an_order_over_the_venues_cap_goes_as_equal_parts_under_it(exchange):
    """binanceusdm's BTCUSDT takes 120 BTC in a market order (MARKET_LOT_SIZE) and 1,000 in
    a limit order (LOT_SIZE): 300 BTC at market is three orders of 100, each its own id;
    the same at a limit is one; the stops for 300 BTC are three parts each."""
    config = EnvConfig.model_validate({"limits": {"max_concentration": 1.0}})
    rows = book((0.0, 300.0, ExecStyle.MARKET, 1, 0.0, 0.0, 30_000.0, 50_000.0))
    one = dict(list(SYMBOLS.items())[:1])

    market_parts = translate(exchange, "run", BAR, one, rows, market()[:, :1], PARAMS, 1,
                             config, 1e6).orders
    stops = protective_orders(exchange, "run", BAR, one, rows, np.array([300.0]),
                              np.array([40_000.0])).orders
    rows[0, L.STYLE], rows[0, L.CLIP], rows[0, L.LIMIT_PX] = ExecStyle.LIMIT, 300.0, 39_990.0
    limit = translate(exchange, "run", BAR, one, rows, market()[:, :1], PARAMS, 1, config,
                      1e6).orders

    assert [o.amount for o in market_parts] == [100.0, 100.0, 100.0]
    assert [o.client_id for o in market_parts] == [
        client_order_id("run", BAR, 0, "entry", k) for k in (1, 2, 3)]
    assert [o.amount for o in limit] == [300.0]
    assert limit[0].client_id == client_order_id("run", BAR, 0, "entry")
    assert [(o.leg, o.amount, o.stop_price) for o in stops] == \
        [("stop_loss", 100.0, 30_000.0)] * 3 + [("take_profit", 100.0, 50_000.0)] * 3
    assert len({o.client_id for o in (*market_parts, *stops)}) == 9


def test_each_venue_reads_its_own_market_order_cap():
    """okx (maxMktSz 12,000 contracts of 0.01 BTC: 120 BTC) and bybit (maxMktOrderQty
    119 BTC) publish their market caps only in the raw market info."""
    from live.dialects import max_order_amount
    from tests.unit.market.ccxt_fakes import BybitVenue, OkxVenue

    okx = fake_exchange(OkxVenue())
    bybit = fake_exchange(BybitVenue())
    for ex in (okx, bybit):
        ex.load_markets()
    symbol = SYMBOLS["BTC"]
    rows = book((0.0, 300.0, ExecStyle.MARKET, 1))
    config = EnvConfig.model_validate({"limits": {"max_concentration": 1.0}})

    assert max_order_amount(okx, symbol, "market", False) == 12_000.0
    assert max_order_amount(okx, symbol, "market", True) == 12_000.0  # maxStopSz
    assert max_order_amount(okx, symbol, "limit", False) == 100_000_000.0
    assert max_order_amount(bybit, symbol, "market", False) == 119.0
    assert max_order_amount(bybit, symbol, "limit", False) == 1_190.0
    okx_parts = translate(okx, "run", BAR, {"BTC": symbol}, rows, market()[:, :1], PARAMS, 1,
                          config, 1e6).orders
    bybit_parts = translate(bybit, "run", BAR, {"BTC": symbol}, rows, market()[:, :1], PARAMS,
                            1, config, 1e6).orders
    assert [o.amount for o in okx_parts] == [10_000.0] * 3  # contracts
    assert [o.amount for o in bybit_parts] == [100.0] * 3


def test_past_the_most_parts_the_rest_is_skipped_with_the_reason(exchange):
    config = EnvConfig.model_validate({"limits": {"max_concentration": 1.0,
                                                  "max_leverage": 20}})
    rows = book((0.0, 2_500.0 * 4, ExecStyle.MARKET, 1))  # ETH: 2,000 a market order
    eth = {"ETH": SYMBOLS["ETH"]}

    out = translate(exchange, "run", BAR, eth, rows, market()[:, 1:], PARAMS, 1, config, 1e6)

    assert len(out.orders) == 5 and sum(o.amount for o in out.orders) == 10_000.0
    rows[0, L.REMAIN] = 2_000.0 * (MAX_PARTS + 2)
    out = translate(exchange, "run", BAR, eth, rows, market(close=(40_000.0, 20.0))[:, 1:],
                    PARAMS, 1, config, 1e6)
    assert len(out.orders) == MAX_PARTS
    (rest,) = out.skipped
    assert "more than 20 orders" in rest.reason
    assert sum(o.amount for o in out.orders) + rest.amount == pytest.approx(2_000.0 * 22)


@given(cap_steps=st.integers(1, 10**5), whole=st.integers(0, 200), rest=st.floats(0, 1),
       step=st.sampled_from([0.001, 0.01, 1.0]))
def test_split_parts_are_whole_steps_under_the_cap_and_add_up(cap_steps, whole, rest, step):
    steps = max(cap_steps * whole + int(rest * (cap_steps - 1)), 1)
    amount, cap = steps * step, cap_steps * step
    parts = split_amount(amount, cap, step)

    assert sum(round(p / step) for p in parts) == steps
    assert all(p <= cap * (1 + 1e-12) for p in parts)
    assert max(parts) - min(parts) <= step * (1 + 1e-9)
    assert len(parts) == -(-steps // cap_steps)
