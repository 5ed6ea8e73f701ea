"""A stateful bybit v5 unified account beneath ccxt's real class: the same duties as
fake_futures.FuturesVenue (orders remembered by orderLinkId, market orders filled at the
venue's price, conditional orders resting until cancelled, positions, a USDT wallet, the
execution list with trades and funding), in bybit's formats: JSON bodies, retCode errors,
wallet balances that exclude unrealised PnL.

Conditional orders trigger as fake_futures' do when :meth:`BybitFutures.trade_bar` trades
a bar of last prices through them (bybit's default ``triggerBy``, LastPrice, which ccxt
leaves unset; an order asking for MarkPrice or IndexPrice fails the test rather than
trigger on the wrong prices), by their ``triggerDirection`` (1: when the price rises to
the trigger, the high; 2: when it falls to it, the low), stop-losses (a sell falling, a
buy rising) first. A triggered order fills as a market order (``fill_slippage``, the
taker fee) and is Filled, with an execution whose stopOrderType is the order's; a
reduce-only one never fills more than the position nor against its side (nothing to
reduce: Rejected, no execution). Like the fake's other fills, no realised PnL is
booked to the wallet.

Like bybit, it refuses a market (or conditional market) order above the symbol's
``maxMktOrderQty`` and a limit order above its ``maxOrderQty`` (retCode 10001, "The
number of contracts exceeds maximum limit allowed: too large", with both quantities
scaled by 1e8 as bybit writes them), read from the instruments fixture it serves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from tests.unit.live.fake_futures import Bar, Crash, crossing
from tests.unit.market.ccxt_fakes import BybitVenue, Request, fixture


def max_quantities() -> dict[tuple[str, str], float]:
    """(symbol, 'Market' or 'Limit') -> the most one order may carry, from the fixture."""
    rows = fixture("bybit", "v5_market_instruments-info_linear.json")["result"]["list"]
    return {(r["symbol"], kind): float(r["lotSizeFilter"][key]) for r in rows
            for kind, key in (("Market", "maxMktOrderQty"), ("Limit", "maxOrderQty"))}


@dataclass
class BybitFutures(BybitVenue):
    paths: ClassVar = {**BybitVenue.paths, "order": ("/v5/order/create",),
                       "positions": ("/v5/position/list",)}
    prices: dict[str, float] = field(default_factory=lambda: {"BTCUSDT": 40_000.0,
                                                              "ETHUSDT": 2_000.0})
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Accepted orders by orderLinkId (the native rows /v5/order/realtime answers)."""
    positions: dict[str, float] = field(default_factory=dict)
    entries: dict[str, float] = field(default_factory=dict)
    leverages: dict[str, int] = field(default_factory=dict)
    executions: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    """Per next new order, in order: 'crash_before', 'crash_after'."""
    wallet: float = 1_000_000.0
    max_qty: dict[tuple[str, str], float] = field(default_factory=max_quantities)
    """bybit's per-order quantity caps (max_quantities); empty: none."""
    fill_slippage: float = 0.0
    margin_mode: str = "ISOLATED_MARGIN"
    triggered: list[dict[str, Any]] = field(default_factory=list)
    """Conditional orders the venue triggered (fake_futures.FuturesVenue.triggered)."""
    bars_traded: int = 0

    def handle(self, method: str, url: str, headers: dict[str, str],
               body: str | bytes | None = None) -> tuple[int, Any]:
        if isinstance(body, bytes):
            body = body.decode()
        if not (body and body.startswith("{")):
            return super().handle(method, url, headers, body)
        parts = urlsplit(url)  # a signed POST: JSON body (the base parses urlencoded ones)
        params = {k: (json.dumps(v) if isinstance(v, bool) else str(v))
                  for k, v in json.loads(body).items()}
        params.update(parse_qsl(parts.query))
        self.received.append(Request(method, parts.path, params, headers))
        return self.routes()[parts.path](params)

    def routes(self) -> dict[str, Any]:
        return {**super().routes(),
                "/v5/asset/coin/query-info": lambda p: self._ok({"rows": []}),
                "/v5/user/query-api": lambda p: self._ok({"unified": 0, "uta": 1,
                                                          "readOnly": 0}),
                "/v5/account/info": lambda p: self._ok({"unifiedMarginStatus": 6,
                                                        "marginMode": self.margin_mode}),
                "/v5/account/set-margin-mode": self._set_margin_mode,
                "/v5/position/set-leverage": self._set_leverage,
                "/v5/order/create": self._create,
                "/v5/order/realtime": lambda p: self._orders(p, open_=True),
                "/v5/order/history": lambda p: self._orders(p, open_=False),
                "/v5/order/cancel": self._cancel,
                "/v5/position/list": self._positions,
                "/v5/account/wallet-balance": self._wallet,
                "/v5/execution/list": self._execution_list}

    def _fail(self, code: int, message: str) -> tuple[int, Any]:
        return 200, {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {},
                     "time": self.now_ms}

    def open_orders(self, trigger: bool) -> list[dict[str, Any]]:
        return self._orders({"orderFilter": "StopOrder" if trigger else "Order"}, True)[1][
            "result"]["list"]

    def pay_funding(self, symbol: str, rate: float, mark: float) -> float:
        """Funding on the open position at ``mark``: bybit books it as an execution of type
        Funding whose execFee is what was paid (negative when received)."""
        qty = self.positions.get(symbol, 0.0)
        paid = qty * mark * rate
        self.wallet -= paid
        self.executions.append(self._execution(symbol, "Funding", qty, mark, paid, "", ""))
        return -paid

    def _execution(self, symbol: str, kind: str, qty: float, price: float, fee: float,
                   order_id: str, link_id: str) -> dict[str, Any]:
        return {"symbol": symbol, "execType": kind, "execId": f"e{len(self.executions) + 1}",
                "orderId": order_id, "orderLinkId": link_id,
                "side": "Buy" if qty > 0 else "Sell", "execQty": f"{abs(qty)}",
                "execPrice": f"{price}", "execValue": f"{abs(qty) * price}",
                "execFee": f"{fee}", "feeCurrency": "USDT", "feeRate": "0.00055",
                "isMaker": False, "orderType": "Market", "orderQty": f"{abs(qty)}",
                "orderPrice": f"{price}", "markPrice": f"{price}", "execTime": str(self.now_ms),
                "closedSize": "0", "leavesQty": "0", "stopOrderType": "UNKNOWN", "seq": 1}

    def _execution_list(self, p: dict[str, str]) -> tuple[int, Any]:
        lo = int(p.get("startTime", 0))
        rows = [e for e in self.executions if e["symbol"] == p.get("symbol", e["symbol"])
                and e["execType"] == p.get("execType", e["execType"])
                and int(e["execTime"]) >= lo]
        return self._ok({"category": "linear", "list": rows[::-1], "nextPageCursor": ""})

    def _set_margin_mode(self, p: dict[str, str]) -> tuple[int, Any]:
        if p["setMarginMode"] == self.margin_mode:
            return self._fail(110026, "Cross/isolated margin mode is not modified")
        self.margin_mode = p["setMarginMode"]
        return self._ok({"reasons": []})

    def _set_leverage(self, p: dict[str, str]) -> tuple[int, Any]:
        lev = int(float(p["buyLeverage"]))
        if self.leverages.get(p["symbol"]) == lev:
            return self._fail(110043, "Set leverage not modified")
        self.leverages[p["symbol"]] = min(lev, 100)
        return self._ok({})

    def _create(self, p: dict[str, str]) -> tuple[int, Any]:
        fault = self.faults.pop(0) if self.faults else None
        if fault == "crash_before":
            raise Crash("sender died before the order reached the venue")
        link = p["orderLinkId"]
        if link in self.orders:
            return self._fail(110072, "OrderLinkedID is duplicate")
        qty = float(p["qty"])
        cap = self.max_qty.get((p["symbol"], p["orderType"]), float("inf"))
        if qty > cap:
            return self._fail(10001, "The number of contracts exceeds maximum limit allowed: "
                              f"too large, order_qty:{qty * 1e8:.0f} > max_qty:{cap * 1e8:.0f}")
        signed = qty if p["side"] == "Buy" else -qty
        trigger = "triggerPrice" in p
        order_id = f"b{len(self.orders) + 1}"
        price = self.prices[p["symbol"]] * (1.0 + (self.fill_slippage if signed > 0
                                                   else -self.fill_slippage))
        filled = p["orderType"] == "Market" and not trigger
        if filled:
            self._fill(p["symbol"], signed, price, order_id, link)
        self.orders[link] = {
            "orderId": order_id, "orderLinkId": link, "symbol": p["symbol"],
            "side": p["side"], "orderType": p["orderType"], "price": p.get("price", "0"),
            "qty": p["qty"], "timeInForce": p.get("timeInForce", "GTC"),
            "orderStatus": "Filled" if filled else "Untriggered" if trigger else "New",
            "cumExecQty": p["qty"] if filled else "0",
            "cumExecValue": f"{qty * price}" if filled else "0",
            "avgPrice": f"{price}" if filled else "", "leavesQty": "0" if filled else p["qty"],
            "triggerPrice": p.get("triggerPrice", ""), "triggerDirection":
            int(p.get("triggerDirection", 0)), "reduceOnly": p.get("reduceOnly") == "true",
            "stopOrderType": "Stop" if trigger else "", "positionIdx": 0,
            "triggerBy": p.get("triggerBy", "LastPrice"),
            "createdTime": str(self.now_ms), "updatedTime": str(self.now_ms)}
        if fault == "crash_after":
            raise Crash("sender died after the venue accepted the order")
        return self._ok({"orderId": order_id, "orderLinkId": link})

    def _fill(self, symbol: str, signed: float, price: float, order_id: str,
              link: str) -> dict[str, Any]:
        """Fill ``signed`` of ``symbol`` at ``price`` as a taker: the position, its average
        entry, the fee off the wallet, and a Trade execution (returned)."""
        held = self.positions.get(symbol, 0.0)
        if held * signed >= 0.0 and held + signed != 0.0:
            entry = self.entries.get(symbol, price)
            self.entries[symbol] = (held * entry + signed * price) / (held + signed)
        self.positions[symbol] = round(held + signed, 9)
        fee = abs(signed) * price * 0.00055
        self.wallet -= fee
        execution = self._execution(symbol, "Trade", signed, price, fee, order_id, link)
        self.executions.append(execution)
        return execution

    def trade_bar(self, bars: dict[str, Bar]) -> None:
        """Trade one bar of last prices per symbol ({symbol: (open, high, low)}) through the
        untriggered conditional orders (module docstring)."""
        self.bars_traded += 1
        resting = [o for o in self.orders.values() if o["orderStatus"] == "Untriggered"
                   and o["symbol"] in bars]
        resting.sort(key=lambda o: (o["side"] == "Buy") != (o["triggerDirection"] == 1))
        for row in resting:  # stop-losses (a buy on a rise, a sell on a fall) first
            if row["triggerBy"] != "LastPrice":
                raise AssertionError(f"fake bybit triggers on last prices only, not "
                                     f"{row['triggerBy']}")
            price = crossing(row["triggerDirection"] == 1, float(row["triggerPrice"]),
                             bars[row["symbol"]])
            if price is not None:
                self._trigger(row, price)

    def _trigger(self, row: dict[str, Any], price: float) -> None:
        """A triggered conditional order: a market order for its quantity (reduce-only: at
        most the position, and only against it), filled at ``price``."""
        symbol, buy = row["symbol"], row["side"] == "Buy"
        held = self.positions.get(symbol, 0.0)
        qty = float(row["qty"])
        if row["reduceOnly"]:
            qty = min(qty, abs(held)) if (held < 0.0 if buy else held > 0.0) else 0.0
        stop = buy == (row["triggerDirection"] == 1)
        record = {"client_id": row["orderLinkId"], "symbol": symbol, "side": row["side"],
                  "leg": "stop_loss" if stop else "take_profit", "qty": qty, "price": None,
                  "bar": self.bars_traded}
        self.triggered.append(record)
        row["updatedTime"] = str(self.now_ms)
        if qty <= 0.0:
            row["orderStatus"] = "Rejected"  # a reduce-only order with nothing to reduce
            return
        price *= 1.0 + (self.fill_slippage if buy else -self.fill_slippage)
        execution = self._fill(symbol, qty if buy else -qty, price, row["orderId"],
                               row["orderLinkId"])
        execution["stopOrderType"] = row["stopOrderType"]
        record["price"] = price
        row.update(orderStatus="Filled", cumExecQty=f"{qty}", cumExecValue=f"{qty * price}",
                   avgPrice=f"{price}", leavesQty="0")

    def _orders(self, p: dict[str, str], open_: bool) -> tuple[int, Any]:
        """/v5/order/realtime answers open orders, /v5/order/history closed ones (the
        account's recent 500), filtered by orderLinkId and by orderFilter: StopOrder
        (conditional) or plain orders."""
        trigger = p.get("orderFilter") == "StopOrder"
        live = ("New", "PartiallyFilled", "Untriggered")
        rows = [o for o in self.orders.values() if o["symbol"] == p.get("symbol", o["symbol"])
                and (o["stopOrderType"] != "") == trigger
                and (o["orderStatus"] in live) == open_
                and o["orderLinkId"] == p.get("orderLinkId", o["orderLinkId"])]
        return self._ok({"category": "linear", "list": rows, "nextPageCursor": ""})

    def _cancel(self, p: dict[str, str]) -> tuple[int, Any]:
        for row in self.orders.values():
            if row["orderId"] == p.get("orderId") and row["orderStatus"] in (
                    "New", "PartiallyFilled", "Untriggered"):
                row["orderStatus"] = "Cancelled" if row["stopOrderType"] == "" \
                    else "Deactivated"
                return self._ok({"orderId": row["orderId"], "orderLinkId": row["orderLinkId"]})
        return self._fail(110001, "Order does not exist.")

    def _positions(self, p: dict[str, str]) -> tuple[int, Any]:
        rows = []
        for symbol in self.ids:
            qty = self.positions.get(symbol, 0.0)
            mark = self.prices[symbol]
            entry = self.entries.get(symbol, mark) if qty else 0.0
            rows.append({"symbol": symbol, "positionIdx": 0, "riskId": 1, "tradeMode": 0,
                         "side": "Buy" if qty > 0 else "Sell" if qty < 0 else "",
                         "size": f"{abs(qty)}", "avgPrice": f"{entry}",
                         "positionValue": f"{abs(qty) * entry}",
                         "leverage": str(self.leverages.get(symbol, 10)),
                         "markPrice": f"{mark}", "liqPrice": "", "bustPrice": "",
                         "positionIM": "0", "positionMM": "0", "takeProfit": "",
                         "stopLoss": "", "unrealisedPnl": f"{qty * (mark - entry)}",
                         "cumRealisedPnl": "0", "positionStatus": "Normal",
                         "createdTime": str(self.now_ms), "updatedTime": str(self.now_ms)})
        if "symbol" in p:
            rows = [r for r in rows if r["symbol"] == p["symbol"]]
        return self._ok({"category": "linear", "list": rows, "nextPageCursor": ""})

    def _wallet(self, p: dict[str, str]) -> tuple[int, Any]:
        upnl = sum(q * (self.prices[s] - self.entries.get(s, self.prices[s]))
                   for s, q in self.positions.items())
        coin = {"coin": "USDT", "walletBalance": f"{self.wallet}", "equity":
                f"{self.wallet + upnl}", "unrealisedPnl": f"{upnl}", "locked": "0",
                "totalPositionIM": "0", "totalOrderIM": "0", "borrowAmount": "0",
                "accruedInterest": "0", "usdValue": f"{self.wallet + upnl}"}
        return self._ok({"list": [{"accountType": "UNIFIED", "totalEquity":
                                   f"{self.wallet + upnl}", "totalWalletBalance":
                                   f"{self.wallet}", "totalPerpUPL": f"{upnl}",
                                   "coin": [coin]}]})
