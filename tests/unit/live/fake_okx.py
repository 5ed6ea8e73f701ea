"""A stateful okx v5 trading account beneath ccxt's real class, for USDT-margined swaps:
the same duties as fake_futures.FuturesVenue and fake_bybit.BybitFutures (orders
remembered by client id, market orders filled at the venue's price, conditional orders
resting until cancelled, positions, a USDT balance, fills and funding bills), in okx's
formats: JSON bodies (batch endpoints take arrays), ``code``/``sCode`` errors with okx's
numbers, sizes in contracts (ctVal 0.01 BTC, 0.1 ETH), one-way (net) or long/short
position mode, cross leverage per instrument, and a balance whose ``eq`` includes
unrealised PnL.

Algo (conditional) orders are remembered by ``algoClOrdId``: ccxt sends the client id
as ``clOrdId`` on /trade/order-algo, which okx takes as the algo's client id and lists
as ``algoClOrdId`` (``clOrdId`` stays empty until the algo triggers).

Conditional algo orders trigger as fake_futures' do when :meth:`OkxSwaps.trade_bar`
trades a bar of last prices through them (their ``slTriggerPxType``/``tpTriggerPxType``,
which ccxt sends as ``last``; an order asking for ``mark`` or ``index`` fails the test
rather than trigger on the wrong prices): a stop-loss sells when the low reaches
``slTriggerPx`` and buys when the high does, a take-profit at ``tpTriggerPx`` the
opposite, stop-losses first; at the trigger or, when the bar opened beyond it, at its
open. The algo places a market child order (taker fee, ``fill_slippage``, realised PnL
booked to cash like every fill here) and becomes ``effective``, its ``ordId``,
``actualSz``, ``actualPx`` and ``actualSide`` set; the fill (ordId the child's) is in
the fills history. The child order itself is not listed by the order endpoints. A
reduce-only algo never fills more than the position nor against its side: with nothing
to reduce it ends ``order_failed`` (failCode 51169) without a fill."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from tests.unit.live.fake_futures import Bar, Crash, crossing
from tests.unit.market.ccxt_fakes import OkxVenue, Request

CT_VAL = {"BTC-USDT-SWAP": 0.01, "ETH-USDT-SWAP": 0.1}
"""Base units per contract (the instruments fixture's ctVal)."""
TAKER, MAKER = 0.0005, 0.0002
PASSPHRASE = "test-password"
LIVE = ("live", "partially_filled")
HARNESS_IDS = {"BTCUSDT": "BTC-USDT-SWAP", "ETHUSDT": "ETH-USDT-SWAP"}
"""The replay harness's market ids (binance style) -> okx's instIds."""


def _s(value: float) -> str:
    return f"{value:.15g}"


@dataclass
class OkxSwaps(OkxVenue):
    paths: ClassVar = {**OkxVenue.paths, "order": ("/api/v5/trade/batch-orders",
                                                   "/api/v5/trade/order",
                                                   "/api/v5/trade/order-algo"),
                       "positions": ("/api/v5/account/positions",),
                       "lookup": ("/api/v5/trade/order", "/api/v5/trade/order-algo")}
    """Kinds of request ``inject`` answers (GETs: a POST's JSON body bypasses it)."""
    aliases: ClassVar = HARNESS_IDS
    prices: dict[str, float] = field(default_factory=lambda: {"BTC-USDT-SWAP": 40_000.0,
                                                              "ETH-USDT-SWAP": 2_000.0})
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Accepted orders by client id: okx's native rows (plain orders by clOrdId, algo
    orders by algoClOrdId), each with ``algo`` saying which."""
    positions: dict[str, float] = field(default_factory=dict)
    """Net position per instId, in contracts."""
    entries: dict[str, float] = field(default_factory=dict)
    cash: float = 1_000_000.0
    """The USDT cash balance (cashBal): deposits, realised PnL, fees and funding."""
    leverages: dict[tuple[str, str], int] = field(default_factory=dict)
    """(instId, mgnMode) -> leverage set."""
    max_leverage: int = 100
    pos_mode: str = "net_mode"
    fills: list[dict[str, Any]] = field(default_factory=list)
    bills: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    """Per next new order, in order: 'crash_before', 'crash_after' (the sender dies),
    'timeout_after' (accepted, answered 50004: outcome unknown), 'no_margin' (refused:
    51008)."""
    fill_slippage: float = 0.0
    max_market_size: float = 12_000.0
    """maxMktSz of both swaps (the instruments fixture), in contracts: a bigger market order
    is refused with 51202."""
    method: str = "GET"
    triggered: list[dict[str, Any]] = field(default_factory=list)
    """Algo orders the venue triggered (fake_futures.FuturesVenue.triggered); qty in
    contracts."""
    bars_traded: int = 0

    def handle(self, method: str, url: str, headers: dict[str, str],
               body: str | bytes | None = None) -> tuple[int, Any]:
        self.method = method
        parts = urlsplit(url)
        if parts.path.startswith(("/api/v5/trade", "/api/v5/account")):
            refused = self._authenticate(headers)
            if refused is not None:
                self.received.append(Request(method, parts.path, {}, headers))
                return refused
        if isinstance(body, bytes):
            body = body.decode()
        if not (body and body[0] in "[{"):
            return super().handle(method, url, headers, body)
        sent = json.loads(body)  # a signed POST: a JSON object, or an array (batch endpoints)
        for item in sent if isinstance(sent, list) else [sent]:
            self.received.append(Request(method, parts.path, {k: _text(v) for k, v in
                                                              item.items()}, headers))
        route = self.routes().get(parts.path)
        if route is None:
            raise AssertionError(f"fake okx: no route for {method} {url}")
        try:
            return route(sent)
        except _Timeout as timeout:
            return timeout.answer

    def _authenticate(self, headers: dict[str, str]) -> tuple[int, Any] | None:
        if not headers.get("OK-ACCESS-KEY"):
            return 401, {"code": "50103", "msg": "Request header OK-ACCESS-KEY can not be "
                         "empty.", "data": []}
        if headers.get("OK-ACCESS-PASSPHRASE") != PASSPHRASE:
            return 401, {"code": "50105", "msg": "Invalid OK-ACCESS-PASSPHRASE", "data": []}
        return None

    def routes(self) -> dict[str, Any]:
        return {**super().routes(),
                "/api/v5/account/config": self._config,
                "/api/v5/account/set-position-mode": self._set_position_mode,
                "/api/v5/account/set-leverage": self._set_leverage,
                "/api/v5/account/leverage-info": self._leverage_info,
                "/api/v5/account/positions": self._positions,
                "/api/v5/account/balance": self._balance,
                "/api/v5/account/bills": self._bills,
                "/api/v5/account/bills-archive": self._bills,
                "/api/v5/trade/batch-orders": lambda rows: self._batch(rows, self._place),
                "/api/v5/trade/order": self._order,
                "/api/v5/trade/order-algo": self._order_algo,
                "/api/v5/trade/orders-pending": lambda p: self._list(p, algo=False,
                                                                     open_=True),
                "/api/v5/trade/orders-history": lambda p: self._list(p, algo=False,
                                                                     open_=False),
                "/api/v5/trade/orders-algo-pending": lambda p: self._list(p, algo=True,
                                                                          open_=True),
                "/api/v5/trade/orders-algo-history": lambda p: self._list(p, algo=True,
                                                                          open_=False),
                "/api/v5/trade/cancel-order": lambda p: self._answer([self._cancel(p)]),
                "/api/v5/trade/cancel-batch-orders": lambda rows: self._batch(
                    rows, self._cancel),
                "/api/v5/trade/cancel-algos": lambda rows: self._batch(rows, self._cancel),
                "/api/v5/trade/fills": self._fills,
                "/api/v5/trade/fills-history": self._fills}

    # answers ----------------------------------------------------------------------------

    @staticmethod
    def _ok(data: list[dict[str, Any]]) -> tuple[int, Any]:
        return 200, {"code": "0", "msg": "", "data": data}

    @staticmethod
    def _fail(code: str, message: str) -> tuple[int, Any]:
        return 200, {"code": code, "msg": message, "data": []}

    @staticmethod
    def _item_fail(code: str, message: str, **ids: str) -> dict[str, Any]:
        return {"clOrdId": "", "ordId": "", "tag": "", **ids, "sCode": code, "sMsg": message}

    def _answer(self, items: list[dict[str, Any]]) -> tuple[int, Any]:
        """One or more order operations: code 0 when all succeeded, 2 when some did, 1
        when none did (the reasons in each item's sCode and sMsg)."""
        failed = sum(item.get("sCode", "0") != "0" for item in items)
        code, msg = ("0", "") if not failed else ("1", "All operations failed") \
            if failed == len(items) else ("2", "Bulk operation partially succeeded")
        return 200, {"code": code, "msg": msg, "data": items, "inTime": str(self.now_ms * 1000),
                     "outTime": str(self.now_ms * 1000)}

    def _batch(self, rows: list[dict[str, Any]], each) -> tuple[int, Any]:
        if not isinstance(rows, list):
            return self._fail("50000", "Body can not be empty")
        return self._answer([each(row) for row in rows])

    # account ----------------------------------------------------------------------------

    def _config(self, p: dict[str, str]) -> tuple[int, Any]:
        return self._ok([{"acctLv": "2", "posMode": self.pos_mode, "uid": "44705892343619584",
                          "mainUid": "44705892343619584", "autoLoan": False,
                          "ctIsoMode": "automatic", "mgnIsoMode": "automatic",
                          "greeksType": "PA", "level": "Lv1", "label": "quantum test",
                          "perm": "read_only,trade", "settleCcy": "USDT"}])

    def _set_position_mode(self, p: dict[str, Any]) -> tuple[int, Any]:
        if p.get("posMode") not in ("net_mode", "long_short_mode"):
            return self._fail("51000", "Parameter posMode error")
        if p["posMode"] != self.pos_mode and (any(self.positions.values()) or any(
                o["state"] in LIVE for o in self.orders.values())):
            return self._fail("59000", "Settings failed. Close any open positions or "
                              "orders before modifying settings.")
        self.pos_mode = p["posMode"]
        return self._ok([{"posMode": self.pos_mode}])

    def _set_leverage(self, p: dict[str, Any]) -> tuple[int, Any]:
        inst, mode, lever = p.get("instId"), p.get("mgnMode"), int(float(p.get("lever", 0)))
        if inst not in self.ids:
            return self._fail("51001", "Instrument ID does not exist")
        if mode not in ("cross", "isolated"):
            return self._fail("51000", "Parameter mgnMode error")
        if not 1 <= lever <= self.max_leverage:
            return self._fail("59102", "Leverage exceeds the maximum leverage. Please "
                              "adjust the leverage")
        self.leverages[(inst, mode)] = lever
        return self._ok([{"instId": inst, "lever": str(lever), "mgnMode": mode,
                          "posSide": p.get("posSide", "")}])

    def _leverage_info(self, p: dict[str, str]) -> tuple[int, Any]:
        mode = p.get("mgnMode")
        if mode not in ("cross", "isolated"):
            return self._fail("51000", "Parameter mgnMode error")
        return self._ok([{"instId": inst, "mgnMode": mode, "posSide": "net",
                          "lever": str(self.leverages.get((inst, mode), 10))}
                         for inst in p["instId"].split(",")])

    def upl(self, inst: str) -> float:
        qty = self.positions.get(inst, 0.0) * CT_VAL[inst]
        return qty * (self.prices[inst] - self.entries.get(inst, self.prices[inst]))

    def equity(self) -> float:
        return self.cash + sum(self.upl(i) for i in self.positions)

    def _positions(self, p: dict[str, str]) -> tuple[int, Any]:
        wanted = p["instId"].split(",") if "instId" in p else list(self.ids)
        if len(wanted) > 10:
            return self._fail("51000", "Parameter instId error")
        rows = []
        for inst in wanted:
            pos = self.positions.get(inst, 0.0)
            if not pos:
                continue
            mark, entry = self.prices[inst], self.entries[inst]
            notional = abs(pos) * CT_VAL[inst] * mark
            lever = self.leverages.get((inst, "cross"), 10)
            rows.append({"instType": "SWAP", "instId": inst, "mgnMode": "cross",
                         "posId": str(list(self.ids).index(inst) + 1), "posSide": "net",
                         "pos": _s(pos), "posCcy": "", "availPos": "", "avgPx": _s(entry),
                         "markPx": _s(mark), "last": _s(mark), "idxPx": _s(mark),
                         "upl": _s(self.upl(inst)),
                         "uplRatio": _s(self.upl(inst) / (notional / lever)),
                         "lever": str(lever), "liqPx": "", "imr": _s(notional / lever),
                         "margin": "", "mmr": _s(notional * 0.004), "mgnRatio": "",
                         "notionalUsd": _s(notional), "ccy": "USDT", "adl": "1",
                         "interest": "0", "tradeId": "", "realizedPnl": "0",
                         "cTime": str(self.now_ms), "uTime": str(self.now_ms)})
        return self._ok(rows)

    def _balance(self, p: dict[str, str]) -> tuple[int, Any]:
        upl = sum(self.upl(i) for i in self.positions)
        eq = self.cash + upl
        usdt = {"ccy": "USDT", "eq": _s(eq), "cashBal": _s(self.cash), "upl": _s(upl),
                "availBal": _s(self.cash), "availEq": _s(eq), "frozenBal": "0",
                "ordFrozen": "0", "disEq": _s(eq), "eqUsd": _s(eq), "isoEq": "0",
                "liab": "", "uTime": str(self.now_ms)}
        return self._ok([{"totalEq": _s(eq), "adjEq": _s(eq), "isoEq": "0", "imr": "0",
                          "mmr": "0", "upl": _s(upl), "notionalUsd": "0", "ordFroz": "0",
                          "mgnRatio": "", "uTime": str(self.now_ms), "details": [usdt]}])

    def pay_funding(self, market_id: str, rate: float, mark: float) -> float:
        """Funding on the open position at ``mark`` (longs pay a positive rate), booked
        as a bill of type 8 whose balChg is what the balance received."""
        inst = HARNESS_IDS.get(market_id, market_id)
        received = -self.positions.get(inst, 0.0) * CT_VAL[inst] * mark * rate
        self.cash += received
        self._bill(inst, "8", "174" if received >= 0 else "173", received,
                   self.positions.get(inst, 0.0), mark)
        return received

    def _bill(self, inst: str, kind: str, sub: str, change: float, size: float,
              price: float) -> None:
        self.bills.append({"billId": str(700_000 + len(self.bills)), "instType": "SWAP",
                           "instId": inst, "ccy": "USDT", "mgnMode": "cross",
                           "type": kind, "subType": sub, "balChg": _s(change),
                           "posBalChg": "0", "bal": _s(self.cash), "posBal": "0",
                           "sz": _s(abs(size)), "px": _s(price), "pnl": "0", "fee": "0",
                           "execType": "", "from": "", "to": "", "notes": "",
                           "ordId": "", "tradeId": "", "ts": str(self.now_ms)})

    def _bills(self, p: dict[str, str]) -> tuple[int, Any]:
        """Newest first, at most ``limit`` (100); filtered by type, instType, ccy, ctType
        (all of ours are linear), instId, and begin/end on ts."""
        lo, hi = int(p.get("begin", 0)), int(p.get("end", 2**62))
        rows = [b for b in self.bills
                if b["type"] == p.get("type", b["type"])
                and b["instType"] == p.get("instType", b["instType"])
                and b["ccy"] == p.get("ccy", b["ccy"])
                and p.get("ctType", "linear") == "linear"
                and b["instId"] == p.get("instId", b["instId"])
                and lo <= int(b["ts"]) <= hi]
        return self._ok(rows[::-1][:min(int(p.get("limit", 100)), 100)])

    def _fills(self, p: dict[str, str]) -> tuple[int, Any]:
        if p.get("instType") not in (None, "SWAP"):
            return self._ok([])
        lo, hi = int(p.get("begin", 0)), int(p.get("end", 2**62))
        rows = [f for f in self.fills if f["instId"] == p.get("instId", f["instId"])
                and lo <= int(f["ts"]) <= hi]
        return self._ok(rows[::-1][:min(int(p.get("limit", 100)), 100)])

    # orders -----------------------------------------------------------------------------

    def open_orders(self, algo: bool) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if o["algo"] == algo and o["state"] in LIVE]

    def _order(self, p: Any) -> tuple[int, Any]:
        """POST: place one order; GET: one order by ordId or clOrdId (51603 if unknown)."""
        if self.method == "POST":
            return self._answer([self._place(p)])
        found = self._find(p, algo=False, id_key="ordId", client_key="clOrdId")
        return self._ok([self._native(found)]) if found else \
            self._fail("51603", "Order does not exist")

    def _order_algo(self, p: Any) -> tuple[int, Any]:
        """POST: place one algo order; GET: its details by algoId or algoClOrdId."""
        if self.method == "POST":
            return self._answer([self._place(p)])
        found = self._find(p, algo=True, id_key="algoId", client_key="algoClOrdId")
        return self._ok([self._native(found)]) if found else \
            self._fail("51603", "Order does not exist")

    def _find(self, p: dict[str, str], algo: bool, id_key: str, client_key: str):
        if client_key in p:
            row = self.orders.get(p[client_key])
        else:
            row = next((o for o in self.orders.values() if o[id_key] == p.get(id_key)), None)
        if row is None or row["algo"] != algo or row["instId"] != p.get("instId",
                                                                        row["instId"]):
            return None
        return row

    @staticmethod
    def _native(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k != "algo"}

    def _list(self, p: dict[str, str], algo: bool, open_: bool) -> tuple[int, Any]:
        """orders-pending / orders-history (plain orders), orders-algo-pending /
        orders-algo-history (algo orders: ``ordType`` is required, several may be asked
        for together, comma separated); newest first."""
        kinds = None
        if algo:
            if not p.get("ordType"):
                return self._fail("51000", "Parameter ordType error")
            kinds = set(p["ordType"].split(","))
        rows = [o for o in self.orders.values() if o["algo"] == algo
                and (o["state"] in LIVE) == open_
                and (kinds is None or o["ordType"] in kinds)
                and o["instId"] == p.get("instId", o["instId"])
                and o["state"] == p.get("state", o["state"])]
        if not algo and "ordType" in p:
            rows = [o for o in rows if o["ordType"] in p["ordType"].split(",")]
        return self._ok([self._native(o) for o in rows[::-1]][:int(p.get("limit", 100))])

    def _place(self, p: dict[str, Any]) -> dict[str, Any]:
        """One new order (plain or algo), okx's per-item answer."""
        algo = p.get("ordType") in ("conditional", "oco", "trigger")
        client = str(p.get("algoClOrdId") or p.get("clOrdId") or "")
        ids = {"algoClOrdId": client, "algoId": ""} if algo else {"clOrdId": client}
        fault = self.faults.pop(0) if self.faults else None
        if fault == "crash_before":
            raise Crash("sender died before the order reached the venue")
        inst = p.get("instId")
        if inst not in self.ids:
            return self._item_fail("51001", "Instrument ID does not exist", **ids)
        if p.get("tdMode") not in ("cross", "isolated"):
            return self._item_fail("51000", "Parameter tdMode error", **ids)
        if self.pos_mode == "long_short_mode" and p.get("posSide") not in ("long", "short"):
            return self._item_fail("51000", "Parameter posSide error", **ids)
        if client in self.orders:
            return self._item_fail("51016", "Duplicated clOrdId", **ids)
        if fault == "no_margin":
            return self._item_fail("51008", "Order failed. Insufficient USDT margin in "
                                   "account", **ids)
        size = float(p["sz"])
        if size < 0.01 or abs(round(size / 0.01) - size / 0.01) > 1e-6:
            return self._item_fail("51121", "Order quantity must be a multiple of the lot "
                                   "size.", **ids)
        if p["ordType"] == "market" and size > self.max_market_size:
            return self._item_fail("51202", "Market order amount exceeds the maximum "
                                   "amount.", **ids)
        reduce = p.get("reduceOnly") in (True, "true")
        signed = size if p["side"] == "buy" else -size
        held = self.positions.get(inst, 0.0)
        if reduce and not algo and (held == 0.0 or held * signed > 0
                                    or abs(signed) > abs(held) + 1e-9):
            return self._item_fail("51169", "Order failed because you don't have any "
                                   "positions in this direction for this contract to "
                                   "reduce or close.", **ids)
        seq = str(600_000_000 + len(self.orders))
        row = {"algo": algo, "instType": "SWAP", "instId": inst, "ccy": "",
               "side": p["side"], "posSide": p.get("posSide", "net"), "sz": p["sz"],
               "ordType": p["ordType"], "tdMode": p["tdMode"], "tag": p.get("tag", ""),
               "reduceOnly": "true" if reduce else "false", "lever": str(
                   self.leverages.get((inst, p["tdMode"]), 10)),
               "cTime": str(self.now_ms), "uTime": str(self.now_ms)}
        if algo:
            row.update({"algoId": seq, "algoClOrdId": client, "clOrdId": "", "ordId": "",
                        "ordIdList": [], "state": "live", "closeFraction": "",
                        "tgtCcy": "", "triggerPx": p.get("triggerPx", ""),
                        "ordPx": p.get("orderPx", ""),
                        "slTriggerPx": p.get("slTriggerPx", ""),
                        "slOrdPx": p.get("slOrdPx", ""),
                        "slTriggerPxType": p.get("slTriggerPxType", ""),
                        "tpTriggerPx": p.get("tpTriggerPx", ""),
                        "tpOrdPx": p.get("tpOrdPx", ""),
                        "tpTriggerPxType": p.get("tpTriggerPxType", ""),
                        "actualSz": "", "actualPx": "", "actualSide": "", "triggerTime": "",
                        "failCode": ""})
            answer = {"algoId": seq, "algoClOrdId": client, "clOrdId": "", "sCode": "0",
                      "sMsg": "", "tag": ""}
        else:
            row.update({"ordId": seq, "clOrdId": client, "algoId": "", "algoClOrdId": "",
                        "px": p.get("px", ""), "state": "live", "accFillSz": "0",
                        "fillSz": "0", "fillPx": "", "avgPx": "", "fillTime": "",
                        "tradeId": "", "fee": "0", "feeCcy": "USDT", "pnl": "0",
                        "category": "normal", "cancelSource": ""})
            if p["ordType"] == "market":
                price = self.prices[inst] * (1.0 + (self.fill_slippage if signed > 0
                                                    else -self.fill_slippage))
                self._fill(row, signed, price, TAKER)
            elif p["ordType"] == "post_only" and (
                    (signed > 0 and float(p["px"]) >= self.prices[inst])
                    or (signed < 0 and float(p["px"]) <= self.prices[inst])):
                row["state"] = "canceled"  # it would take: okx cancels a post-only order
                row["cancelSource"] = "31"
            answer = {"ordId": seq, "clOrdId": client, "tag": "", "ts": str(self.now_ms),
                      "sCode": "0", "sMsg": "Order placed"}
        self.orders[client] = row
        if fault == "crash_after":
            raise Crash("sender died after the venue accepted the order")
        if fault == "timeout_after":
            raise _Timeout(self._fail("50004", "Endpoint request timeout (does not "
                                      "indicate success or failure of order, please "
                                      "check order status)"))
        return answer

    def _fill(self, row: dict[str, Any], signed: float, price: float, rate: float) -> None:
        """Fill ``signed`` contracts at ``price``: the net position, its average entry, the
        realised PnL and fee booked to cash, and a fill record."""
        inst, unit = row["instId"], CT_VAL[row["instId"]]
        held = self.positions.get(inst, 0.0)
        entry = self.entries.get(inst, price)
        pnl = 0.0
        if held * signed < 0:  # reduces (and maybe flips)
            closed = min(abs(signed), abs(held))
            pnl = closed * unit * (price - entry) * (1 if held > 0 else -1)
        after = round(held + signed, 9)
        if after == 0.0:
            self.entries.pop(inst, None)
        elif held * after <= 0:  # opened or flipped: the rest is new at the fill price
            self.entries[inst] = price
        elif abs(after) > abs(held):  # added
            self.entries[inst] = (held * entry + signed * price) / after
        self.positions[inst] = after
        fee = abs(signed) * unit * price * rate
        self.cash += pnl - fee
        trade = str(len(self.fills) + 1)
        row.update({"state": "filled", "accFillSz": row["sz"], "fillSz": row["sz"],
                    "fillPx": _s(price), "avgPx": _s(price), "fillTime": str(self.now_ms),
                    "tradeId": trade, "fee": _s(-fee), "pnl": _s(pnl)})
        self.fills.append({"instType": "SWAP", "instId": inst, "tradeId": trade,
                           "ordId": row["ordId"], "clOrdId": row["clOrdId"],
                           "billId": str(800_000 + len(self.fills)), "subType": "1",
                           "tag": "", "fillPx": _s(price), "fillSz": row["sz"],
                           "fillIdxPx": "", "fillPnl": _s(pnl), "fillPxVol": "",
                           "fillPxUsd": "", "fillMarkVol": "", "fillFwdPx": "",
                           "fillMarkPx": _s(price), "side": row["side"], "posSide": "net",
                           "execType": "T" if rate == TAKER else "M", "feeCcy": "USDT",
                           "fee": _s(-fee), "ts": str(self.now_ms), "fillTime":
                           str(self.now_ms)})

    def trade_bar(self, bars: dict[str, Bar]) -> None:
        """Trade one bar of last prices per instId ({instId: (open, high, low)}) through the
        live conditional algo orders (module docstring)."""
        self.bars_traded += 1
        resting = [o for o in self.orders.values() if o["algo"] and o["state"] == "live"
                   and o["ordType"] == "conditional" and o["instId"] in bars]
        resting.sort(key=lambda o: not o["slTriggerPx"])  # stop-losses first
        for row in resting:
            stop = bool(row["slTriggerPx"])
            kind = row["slTriggerPxType" if stop else "tpTriggerPxType"] or "last"
            if kind != "last":
                raise AssertionError(f"fake okx triggers on last prices only, not {kind}")
            trigger = float(row["slTriggerPx" if stop else "tpTriggerPx"])
            price = crossing((row["side"] == "buy") == stop, trigger, bars[row["instId"]])
            if price is not None:
                self._trigger(row, price, stop)

    def _trigger(self, row: dict[str, Any], price: float, stop: bool) -> None:
        """A triggered algo order: a market child order for its size (reduce-only: at most
        the position, and only against it), filled at ``price``."""
        inst, buy = row["instId"], row["side"] == "buy"
        held = self.positions.get(inst, 0.0)
        size = float(row["sz"])
        if row["reduceOnly"] == "true":
            size = min(size, abs(held)) if (held < 0.0 if buy else held > 0.0) else 0.0
        record = {"client_id": row["algoClOrdId"], "symbol": inst, "side": row["side"],
                  "leg": "stop_loss" if stop else "take_profit", "qty": size, "price": None,
                  "bar": self.bars_traded}
        self.triggered.append(record)
        row.update(triggerTime=str(self.now_ms), uTime=str(self.now_ms))
        if size <= 0.0:
            row.update(state="order_failed", failCode="51169")  # nothing to reduce
            return
        price *= 1.0 + (self.fill_slippage if buy else -self.fill_slippage)
        child = {"algo": False, "instType": "SWAP", "instId": inst, "side": row["side"],
                 "posSide": row["posSide"], "sz": _s(size), "ordType": "market",
                 "tdMode": row["tdMode"], "reduceOnly": row["reduceOnly"],
                 "ordId": str(700_000_000 + len(self.triggered)), "clOrdId": "",
                 "algoId": row["algoId"], "algoClOrdId": row["algoClOrdId"],
                 "cTime": str(self.now_ms), "uTime": str(self.now_ms)}
        self._fill(child, size if buy else -size, price, TAKER)
        record["price"] = price
        row.update(state="effective", ordId=child["ordId"], ordIdList=[child["ordId"]],
                   actualSz=_s(size), actualPx=_s(price), actualSide="sl" if stop else "tp")

    def _cancel(self, p: dict[str, Any]) -> dict[str, Any]:
        """One cancellation (plain by ordId or clOrdId, algo by algoId or algoClOrdId)."""
        algo = "algoId" in p or "algoClOrdId" in p
        if algo:
            row = self._find(p, True, "algoId", "algoClOrdId")
            ids = {"algoId": p.get("algoId", ""), "algoClOrdId": p.get("algoClOrdId", "")}
        else:
            row = self._find(p, False, "ordId", "clOrdId")
            ids = {"ordId": p.get("ordId", ""), "clOrdId": p.get("clOrdId", "")}
        if row is None:
            return self._item_fail("51400", "Order cancellation failed as the order has "
                                   "been filled, canceled or does not exist.", **ids)
        if row["state"] not in LIVE:
            code = "51401" if row["state"] == "canceled" else "51402"
            return self._item_fail(code, f"Order cancellation failed: the order is already "
                                   f"{row['state']}.", **ids)
        row["state"] = "canceled"
        row["uTime"] = str(self.now_ms)
        key = ("algoId", "algoClOrdId") if algo else ("ordId", "clOrdId")
        return {key[0]: row[key[0]], key[1]: row[key[1]], "sCode": "0", "sMsg": ""}


class _Timeout(Exception):
    """Raised inside a route to answer the whole request with okx's 50004 (the order
    was accepted, the gateway timed out)."""

    def __init__(self, answer: tuple[int, Any]) -> None:
        super().__init__("okx 50004")
        self.answer = answer


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool | list | dict) else str(value)
