"""A stateful binanceusdm beneath ccxt's real class: orders are accepted, remembered by
client order id, and market orders fill at the venue's current price; faults a live
loop must survive can be set per order (a crash of the sender before or after the
venue accepted it, a timeout after it accepted it).

Conditional orders (binance's algo service: STOP_MARKET, TAKE_PROFIT_MARKET) rest until
:meth:`FuturesVenue.trade_bar` trades a bar through them (the replay harness does, each
bar, before it pays that bar's funding and moves the price to the next bar's open). A
stop-loss sells when the bar's low reaches its trigger and buys when the high does; a
take-profit the opposite; either fills as a market order at the trigger, or at the
bar's open when the bar opened beyond it (a gap), paying ``fill_slippage`` like any
market order. The bar is one of last (contract) prices: the ``workingType`` binance
uses when none is sent (CONTRACT_PRICE, as ccxt sends the session's stops) and the
prices the simulator checks its stops against; an order asking for MARK_PRICE fails
the test (AssertionError) rather than trigger on the wrong prices. Stop-losses go
first (when both could trade in one bar: the simulator's conservative reading). A
reduce-only order never fills more than the position, nor against its side: with
nothing to reduce it is rejected when it triggers ("Reduce Only reject": algoStatus
REJECTED, no fill). A triggered order is FINISHED (with its child order's id, price
and quantity), so open-order queries no longer list it and a lookup by clientAlgoId
finds it closed; its fill is a trade in the account's history like any other (the fee
off the wallet; like the fake's other fills, no realised PnL is booked).

Like binance, it refuses a market (or stop/take-profit market) order above the symbol's
MARKET_LOT_SIZE maxQty and a limit order above its LOT_SIZE maxQty (-4005), read from
the exchangeInfo fixture it serves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests

from tests.unit.market.ccxt_fakes import BinanceVenue, fixture


def max_quantities() -> dict[tuple[str, str], float]:
    """(symbol, 'MARKET_LOT_SIZE' or 'LOT_SIZE') -> maxQty, from the exchangeInfo fixture."""
    info = fixture("binanceusdm", "fapi_v1_exchangeInfo.json")
    return {(s["symbol"], f["filterType"]): float(f["maxQty"]) for s in info["symbols"]
            for f in s["filters"] if f["filterType"] in ("MARKET_LOT_SIZE", "LOT_SIZE")}


class Crash(BaseException):
    """The sending process dies here (nothing in ccxt or the router catches it)."""


Bar = tuple[float, float, float]
"""One bar of last prices as a venue trades it: (open, high, low)."""


def crossing(rising: bool, trigger: float, bar: Bar) -> float | None:
    """Where a conditional order at ``trigger`` fills in ``bar``, or None if the bar did
    not reach it: an order waiting for the price to rise (a buy stop, a sell take-profit)
    triggers when the high reaches the trigger, one waiting for it to fall when the low
    does; at the trigger, or at the open when the bar opened beyond it (a gap)."""
    open_, high, low = bar
    if rising:
        return max(open_, trigger) if high >= trigger else None
    return min(open_, trigger) if low <= trigger else None


@dataclass
class FuturesVenue(BinanceVenue):
    paths: ClassVar = {**BinanceVenue.paths, "order": ("/fapi/v1/order",),
                       "positions": ("/fapi/v3/positionRisk",)}
    prices: dict[str, float] = field(default_factory=lambda: {"BTCUSDT": 40_000.0,
                                                              "ETHUSDT": 2_000.0})
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Accepted orders by client order id (entries and conditional orders alike)."""
    positions: dict[str, float] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    """Per next new order, in order: 'crash_before', 'crash_after', 'timeout_after'."""

    wallet: float = 1_000_000.0
    max_qty: dict[tuple[str, str], float] = field(default_factory=max_quantities)
    """binance's per-order quantity caps (max_quantities); empty: none."""
    entries: dict[str, float] = field(default_factory=dict)
    triggered: list[dict[str, Any]] = field(default_factory=list)
    """Conditional orders the venue triggered, in order: client id, symbol, side, leg
    ('stop_loss' or 'take_profit'), the quantity filled (0: nothing to reduce, rejected)
    and the fill price, and ``bar``: how many bars :meth:`trade_bar` had traded then."""
    bars_traded: int = 0

    method: str = "GET"
    """The method of the request being answered (routes see only its parameters)."""

    def handle(self, method: str, url: str, headers: dict[str, str],
               body: str | bytes | None = None) -> tuple[int, Any]:
        self.method = method
        return super().handle(method, url, headers, body)

    def open_orders(self, algo: bool) -> list[dict[str, Any]]:
        return [o["native"] for o in self.orders.values()
                if o["algo"] == algo and o["native"].get("status", o["native"].get(
                    "algoStatus")) in ("NEW", "PARTIALLY_FILLED")]

    def routes(self) -> dict[str, Any]:
        return {**super().routes(), "/fapi/v1/order": self._order,
                "/fapi/v1/algoOrder": self._algo_order,
                "/fapi/v1/openOrders": lambda p: (200, self.open_orders(False)),
                "/fapi/v1/openAlgoOrders": lambda p: (200, self.open_orders(True)),
                "/fapi/v1/leverageBracket": self._brackets,
                "/fapi/v3/positionRisk": self._position_risk,
                "/fapi/v3/account": self._account,
                "/fapi/v1/userTrades": self._user_trades,
                "/fapi/v1/income": self._income,
                "/fapi/v1/marginType": self._margin_type,
                "/fapi/v1/leverage": self._leverage}

    trades: list[dict[str, Any]] = field(default_factory=list)
    income: list[dict[str, Any]] = field(default_factory=list)

    def pay_funding(self, symbol: str, rate: float, mark: float) -> float:
        """A funding payment on the open position at ``mark`` (longs pay when the rate is
        positive), booked to the wallet and the income history."""
        amount = -self.positions.get(symbol, 0.0) * mark * rate
        self.wallet += amount
        self.income.append({"symbol": symbol, "incomeType": "FUNDING_FEE",
                            "income": f"{amount}", "asset": "USDT", "info": "FUNDING_FEE",
                            "time": self.now_ms, "tranId": len(self.income) + 1,
                            "tradeId": ""})
        return amount

    def _income(self, p: dict[str, str]) -> tuple[int, Any]:
        lo = int(p.get("startTime", 0))
        return 200, [i for i in self.income if i["incomeType"] == p.get("incomeType")
                     and i["symbol"] == p.get("symbol", i["symbol"]) and i["time"] >= lo]
    limit_fill: float = 0.0
    """Share of a limit order filled at once at its price (the rest rests: a partial fill)."""
    fill_slippage: float = 0.0
    """Fraction a market order pays beyond the venue's price (buyers higher, sellers lower)."""

    def _user_trades(self, p: dict[str, str]) -> tuple[int, Any]:
        lo, hi = int(p.get("startTime", 0)), int(p.get("endTime", self.now_ms))
        return 200, [t for t in self.trades
                     if t["symbol"] == p["symbol"] and lo <= t["time"] <= hi]

    margin_types: dict[str, str] = field(default_factory=dict)
    leverages: dict[str, int] = field(default_factory=dict)
    max_leverage: int = 125

    def _margin_type(self, p: dict[str, str]) -> tuple[int, Any]:
        if self.margin_types.get(p["symbol"], "CROSSED") == p["marginType"]:
            return 400, {"code": -4046, "msg": "No need to change margin type."}
        self.margin_types[p["symbol"]] = p["marginType"]
        return 200, {"code": 200, "msg": "success"}

    def _leverage(self, p: dict[str, str]) -> tuple[int, Any]:
        lev = min(int(p["leverage"]), self.max_leverage)  # a venue caps what it grants
        self.leverages[p["symbol"]] = lev
        return 200, {"leverage": lev, "maxNotionalValue": "1000000", "symbol": p["symbol"]}

    def _brackets(self, p: dict[str, str]) -> tuple[int, Any]:
        """Binance's leverageBracket, from the published tables the simulator uses."""
        from envs.config import allowances_of
        from risk.brackets import PUBLISHED_BRACKETS, PUBLISHED_LEVERAGE

        out = []
        for symbol in self.ids:
            asset = self.ids[symbol]
            table = PUBLISHED_BRACKETS[asset]
            caps = [f for f, _ in table[1:]] + [table[-1][0] * 10]
            out.append({"symbol": symbol, "brackets": [
                {"bracket": k + 1, "initialLeverage": int(lev), "notionalCap": cap,
                 "notionalFloor": floor, "maintMarginRatio": rate, "cum": cum}
                for k, ((floor, rate), lev, cap, cum) in enumerate(zip(
                    table, PUBLISHED_LEVERAGE[asset], caps, allowances_of(table),
                    strict=True))]})
        return 200, out

    def _position_risk(self, p: dict[str, str]) -> tuple[int, Any]:
        rows = []
        for symbol, qty in self.positions.items():
            mark = self.prices[symbol]
            entry = self.entries.get(symbol, mark)
            rows.append({"symbol": symbol, "positionSide": "BOTH", "positionAmt": f"{qty}",
                         "entryPrice": f"{entry}", "breakEvenPrice": f"{entry}",
                         "markPrice": f"{mark}", "unRealizedProfit": f"{qty * (mark - entry)}",
                         "liquidationPrice": "0", "isolatedMargin": "0",
                         "notional": f"{qty * mark}", "marginAsset": "USDT",
                         "isolatedWallet": "0", "initialMargin": "0", "maintMargin": "0",
                         "positionInitialMargin": "0", "openOrderInitialMargin": "0",
                         "adl": 0, "bidNotional": "0", "askNotional": "0",
                         "updateTime": self.now_ms})
        return 200, rows

    def _account(self, p: dict[str, str]) -> tuple[int, Any]:
        upnl = sum(q * (self.prices[s] - self.entries.get(s, self.prices[s]))
                   for s, q in self.positions.items())
        usdt = {"asset": "USDT", "walletBalance": f"{self.wallet}",
                "unrealizedProfit": f"{upnl}", "marginBalance": f"{self.wallet + upnl}",
                "maintMargin": "0", "initialMargin": "0", "positionInitialMargin": "0",
                "openOrderInitialMargin": "0", "crossWalletBalance": f"{self.wallet}",
                "crossUnPnl": f"{upnl}", "availableBalance": f"{self.wallet + upnl}",
                "maxWithdrawAmount": f"{self.wallet}", "updateTime": self.now_ms}
        return 200, {"totalInitialMargin": "0", "totalMaintMargin": "0",
                     "totalWalletBalance": f"{self.wallet}",
                     "totalUnrealizedProfit": f"{upnl}",
                     "totalMarginBalance": f"{self.wallet + upnl}",
                     "totalPositionInitialMargin": "0", "totalOpenOrderInitialMargin": "0",
                     "totalCrossWalletBalance": f"{self.wallet}",
                     "totalCrossUnPnl": f"{upnl}", "availableBalance": f"{self.wallet + upnl}",
                     "maxWithdrawAmount": f"{self.wallet}", "assets": [usdt], "positions": []}

    def _cancel(self, key: str, value: str, algo: bool) -> tuple[int, Any]:
        for order in self.orders.values():
            native = order["native"]
            if order["algo"] == algo and str(native.get(key)) == value:
                native["status" if not algo else "algoStatus"] = "CANCELED"
                return 200, ({"algoId": native["algoId"], "clientAlgoId":
                              native["clientAlgoId"], "code": "200", "msg": "success"}
                             if algo else native)
        return 400, {"code": -2011, "msg": "Unknown order sent."}

    def _order(self, p: dict[str, str]) -> tuple[int, Any]:
        if self.method == "DELETE":
            return self._cancel("orderId", p["orderId"], algo=False)
        if "origClientOrderId" in p:  # GET: look one up
            known = self.orders.get(p["origClientOrderId"])
            if known is None or known.get("algo"):
                return 400, {"code": -2013, "msg": "Order does not exist."}
            return 200, known["native"]
        return self._accept(p, p["newClientOrderId"], algo=False)

    def _fill(self, symbol: str, side: str, qty: float, price: float, maker: bool,
              order_id: int) -> None:
        """Fill ``qty`` of ``symbol`` at ``price``: the position, its average entry, the fee
        (maker or taker) off the wallet, and a trade in the history."""
        signed = qty if side == "BUY" else -qty
        held = self.positions.get(symbol, 0.0)
        if held * signed >= 0.0 and held + signed != 0.0:  # open or add: average entry
            entry = self.entries.get(symbol, price)
            self.entries[symbol] = (held * entry + signed * price) / (held + signed)
        self.positions[symbol] = round(held + signed, 9)  # exact, as a venue keeps it
        fee = qty * price * (0.0002 if maker else 0.0004)
        self.wallet -= fee
        self.trades.append({
            "symbol": symbol, "id": len(self.trades) + 1, "orderId": order_id,
            "side": side, "price": f"{price}", "qty": f"{qty}",
            "realizedPnl": "0", "quoteQty": f"{qty * price}", "commission": f"{fee}",
            "commissionAsset": "USDT", "time": self.now_ms, "positionSide": "BOTH",
            "buyer": side == "BUY", "maker": maker})

    def trade_bar(self, bars: dict[str, Bar]) -> None:
        """Trade one bar of last prices per symbol ({symbol: (open, high, low)}) through the
        resting conditional orders (module docstring)."""
        self.bars_traded += 1
        resting = [o["native"] for o in self.orders.values() if o["algo"]
                   and o["native"]["algoStatus"] == "NEW" and o["native"]["symbol"] in bars]
        resting.sort(key=lambda n: not n["orderType"].startswith("STOP"))  # stops first
        for native in resting:
            if native.get("workingType", "CONTRACT_PRICE") != "CONTRACT_PRICE":
                raise AssertionError(f"fake binanceusdm triggers on last prices only, not "
                                     f"{native['workingType']}")
            stop = native["orderType"].startswith("STOP")
            price = crossing((native["side"] == "BUY") == stop, float(native["triggerPrice"]),
                             bars[native["symbol"]])
            if price is not None:
                self._trigger(native, price, "stop_loss" if stop else "take_profit")

    def _trigger(self, native: dict[str, Any], price: float, leg: str) -> None:
        """A triggered conditional order: a market order for its quantity (reduce-only: at
        most the position, and only against it), filled at ``price``."""
        symbol, side = native["symbol"], native["side"]
        held = self.positions.get(symbol, 0.0)
        qty = float(native["quantity"])
        if native["reduceOnly"]:
            qty = min(qty, abs(held)) if (held < 0.0 if side == "BUY" else held > 0.0) else 0.0
        native.update(triggerTime=self.now_ms, updateTime=self.now_ms)
        record = {"client_id": native["clientAlgoId"], "symbol": symbol, "side": side,
                  "leg": leg, "qty": qty, "price": None, "bar": self.bars_traded}
        self.triggered.append(record)
        if qty <= 0.0:
            native["algoStatus"] = "REJECTED"  # binance: "Reduce Only reject"
            return
        price *= 1.0 + (self.fill_slippage if side == "BUY" else -self.fill_slippage)
        child = 1_000_000 + len(self.triggered)  # the matching engine's order
        self._fill(symbol, side, qty, price, False, child)
        record["price"] = price
        native.update(algoStatus="FINISHED", actualOrderId=str(child),
                      actualPrice=f"{price}", executedQty=f"{qty}", avgPrice=f"{price}")

    def _algo_order(self, p: dict[str, str]) -> tuple[int, Any]:
        if self.method == "DELETE":
            return self._cancel("algoId", p["algoId"], algo=True)
        if "quantity" not in p:  # GET by clientAlgoId
            known = self.orders.get(p.get("clientAlgoId", ""))
            if known is None or not known.get("algo"):
                return 400, {"code": -2013, "msg": "Order does not exist."}
            return 200, known["native"]
        return self._accept(p, p["clientAlgoId"], algo=True)

    def _accept(self, p: dict[str, str], client_id: str, algo: bool) -> tuple[int, Any]:
        fault = self.faults.pop(0) if self.faults else None
        if fault == "crash_before":
            raise Crash("sender died before the order reached the venue")
        if client_id in self.orders:
            return 400, {"code": -4116, "msg": "ClientOrderId is duplicated."}
        qty = float(p["quantity"])
        lot = "LOT_SIZE" if p["type"] == "LIMIT" else "MARKET_LOT_SIZE"
        if qty > self.max_qty.get((p["symbol"], lot), float("inf")):
            return 400, {"code": -4005, "msg": "Quantity greater than max quantity."}
        signed = qty if p["side"] == "BUY" else -qty
        filled = p["type"] == "MARKET"
        price = self.prices[p["symbol"]] * (1.0 + (self.fill_slippage if signed > 0
                                                   else -self.fill_slippage))
        done = qty
        partial = False
        if p["type"] == "LIMIT" and self.limit_fill > 0.0:
            done = round(qty * self.limit_fill, 3)
            signed, price, filled = (done if signed > 0 else -done), float(p["price"]), True
            partial = done < qty
        if filled:
            self._fill(p["symbol"], p["side"], done, price, p["type"] == "LIMIT",
                       len(self.orders) + 1)
        native = ({"algoId": len(self.orders) + 1, "clientAlgoId": client_id,
                   "algoType": "CONDITIONAL", "orderType": p["type"], "symbol": p["symbol"],
                   "side": p["side"], "positionSide": "BOTH", "timeInForce": "GTC",
                   "quantity": p["quantity"], "algoStatus": "NEW",
                   "triggerPrice": p["triggerPrice"], "price": "0",
                   "reduceOnly": p.get("reduceOnly") == "true", "createTime": self.now_ms,
                   "updateTime": self.now_ms,
                   "workingType": p.get("workingType", "CONTRACT_PRICE")}
                  if algo else
                  {"orderId": len(self.orders) + 1, "symbol": p["symbol"],
                   "status": ("PARTIALLY_FILLED" if partial else "FILLED" if filled
                              else "NEW"),
                   "clientOrderId": client_id,
                   "price": p.get("price", "0"), "avgPrice": str(price) if filled else "0",
                   "origQty": p["quantity"],
                   "executedQty": f"{done}" if filled else "0",
                   "cumQuote": str(done * price) if filled else "0",
                   "timeInForce": p.get("timeInForce", "GTC"), "type": p["type"],
                   "reduceOnly": p.get("reduceOnly") == "true", "side": p["side"],
                   "stopPrice": "0", "updateTime": self.now_ms})
        self.orders[client_id] = {"native": native, "algo": algo}
        if fault == "crash_after":
            raise Crash("sender died after the venue accepted the order")
        if fault == "timeout_after":
            raise requests.Timeout("read timed out after the venue accepted the order")
        return 200, native
