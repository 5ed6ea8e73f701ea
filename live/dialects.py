"""Where venues differ beneath ccxt's unified API, each found against the venue's real ccxt
class (tests/unit/live: fake_futures for binanceusdm, fake_bybit for bybit, fake_okx for
okx). Everything else in the order path (create, cancel, open orders, positions, trades)
is unified.

- Finding an order by client id: binanceusdm answers ``fetch_order`` with ``clientOrderId``
  (its conditional orders with ``trigger``). bybit's ``fetch_order`` on a unified account
  refuses without ``acknowledged`` and sends ``orderId=None`` when asked by client id, so
  the order is looked for among open orders, then closed ones, by ``orderLinkId``. okx
  answers ``fetch_order`` by ``clOrdId`` (its algo orders by ``algoClOrdId``), unified.
- Open protective orders: okx lists algo orders by type, and ccxt asks for ``trigger``
  ones; its stops are ``conditional``, so that type is asked for. An okx algo order's
  client id is its ``algoClOrdId`` (ccxt's ``clientOrderId`` reads ``clOrdId``, empty on
  an algo order until it triggers).
- The wallet: binanceusdm's balance total is the margin balance (wallet plus unrealised
  PnL), as is okx's (``eq``: cash balance plus unrealised PnL); bybit's is the wallet
  balance alone.
- Funding history: binanceusdm's income ``amount`` and okx's (balChg of a type-8 bill)
  are what was received; bybit's (execFee of a Funding execution) is what was paid.
- Positions: bybit's ``fetch_positions`` takes one symbol at most; all of a settle coin's
  positions come in one request with ``settleCoin``.
- Cross margin: okx has no account or symbol margin mode; each order carries its own
  (ccxt sends ``tdMode`` cross) and leverage is set per instrument and margin mode, so
  ccxt's ``set_margin_mode`` there is a set-leverage call that needs the leverage.
- Position mode: an okx account may be in long/short mode, where an order without
  ``posSide`` is refused; the session trades one net position per symbol, so such an
  account is switched to net mode (binanceusdm and bybit are left as they are).
- "Nothing to change" answers when setting margin mode or leverage: ccxt's NoChange on
  bybit, binanceusdm's -4046 (ccxt maps it to BadRequest), bybit's 110043 for leverage.
- The largest order: ccxt's ``limits.amount.max`` is the limit-order cap everywhere;
  market orders have their own, smaller one: binanceusdm's MARKET_LOT_SIZE (ccxt's
  ``limits.market.max``), bybit's ``maxMktOrderQty`` and okx's ``maxMktSz`` (``maxStopSz``
  for its conditional stops), both only in the raw market ``info``.
- Leverage: binanceusdm echoes the leverage it set; bybit and okx answer without it
  (okx echoes ``lever`` in its raw ``data``), so it is read back with ``fetch_leverage``.
"""

from __future__ import annotations

import math
from typing import Any

import ccxt

NO_CHANGE_CODES = ("-4046", "110043")
"""binanceusdm 'No need to change margin type', bybit 'Set leverage not modified'."""

_WALLET_ONLY = frozenset({"bybit"})
"""Venues whose balance total excludes unrealised PnL."""
_FUNDING_AS_PAID = frozenset({"bybit"})
"""Venues whose funding history amount is positive when paid."""


def find_order(exchange: ccxt.Exchange, symbol: str, client_id: str,
               trigger: bool) -> dict[str, Any] | None:
    """The order with ``client_id`` at the exchange (open or done), or None if it has none."""
    if exchange.id == "bybit":
        params: dict[str, Any] = {"orderLinkId": client_id}
        if trigger:
            params["trigger"] = True
        for fetch in (exchange.fetch_open_orders, exchange.fetch_closed_orders):
            for order in fetch(symbol, params=params):
                if order.get("clientOrderId") == client_id:
                    return order
        return None
    params = {"clientOrderId": client_id}
    if trigger:
        params["trigger"] = True
    try:
        return exchange.fetch_order(None, symbol, params)
    except ccxt.OrderNotFound:
        return None


def protective_params(exchange: ccxt.Exchange, trigger: bool) -> dict[str, Any]:
    """ccxt params listing (and cancelling) open orders: the stop and take-profit orders
    when ``trigger``, else plain ones."""
    if not trigger:
        return {}
    if exchange.id == "okx":  # ccxt would ask for ordType 'trigger'; stops are conditional
        return {"trigger": True, "ordType": "conditional"}
    return {"trigger": True}


def client_id(exchange: ccxt.Exchange, order: dict[str, Any]) -> str | None:
    """The client order id of a ccxt order structure (okx's algo orders: algoClOrdId)."""
    if exchange.id == "okx" and not order.get("clientOrderId"):
        return (order.get("info") or {}).get("algoClOrdId") or None
    return order.get("clientOrderId")


def positions(exchange: ccxt.Exchange, symbols: list[str],
              settle: str) -> list[dict[str, Any]]:
    """The open positions of ``symbols`` (ccxt position structures)."""
    if exchange.id == "bybit":
        return [p for p in exchange.fetch_positions(None, {"settleCoin": settle})
                if p["symbol"] in symbols]
    return exchange.fetch_positions(symbols)


def is_no_change(err: ccxt.ExchangeError) -> bool:
    """An answer meaning the setting already had the asked value."""
    return isinstance(err, ccxt.NoChange) or any(c in str(err) for c in NO_CHANGE_CODES)


def cross_margin(exchange: ccxt.Exchange, symbol: str, leverage: int) -> None:
    """Put ``symbol`` on cross margin ('already cross' is fine); okx's needs the leverage."""
    params = {"lever": leverage} if exchange.id == "okx" else {}
    try:
        exchange.set_margin_mode("cross", symbol, params)
    except ccxt.ExchangeError as err:
        if not is_no_change(err):
            raise


def one_way(exchange: ccxt.Exchange) -> None:
    """Make sure orders need no position side: an okx account in long/short mode is put in
    net mode (okx refuses while positions or orders are open: 59000)."""
    if exchange.id == "okx" and exchange.fetch_position_mode()["hedged"]:
        exchange.set_position_mode(False)


def leverage_set(exchange: ccxt.Exchange, symbol: str, leverage: int) -> int:
    """Set ``leverage`` on ``symbol`` and return what the exchange says it holds."""
    try:
        answer = exchange.set_leverage(leverage, symbol) or {}
    except ccxt.ExchangeError as err:
        if not is_no_change(err):
            raise
        answer = {}
    if "leverage" in answer:
        return int(float(answer["leverage"]))
    held = exchange.fetch_leverage(symbol)
    return int(float(held.get("longLeverage") or held.get("shortLeverage") or 0))


def equity(exchange: ccxt.Exchange, balance: dict[str, Any], settle: str,
           unrealized: float) -> float:
    """Account equity (wallet plus unrealised PnL) from ``fetch_balance``'s answer."""
    total = float(balance["total"].get(settle) or 0.0)
    return total + unrealized if exchange.id in _WALLET_ONLY else total


def funding_received(exchange: ccxt.Exchange, row: dict[str, Any]) -> float:
    """A funding history row's amount as received (negative when paid)."""
    amount = float(row["amount"])
    return -amount if exchange.id in _FUNDING_AS_PAID else amount


def max_order_amount(exchange: ccxt.Exchange, symbol: str, kind: str, trigger: bool) -> float:
    """The most one ``kind`` ('market' or 'limit') order on ``symbol`` may carry, in
    contracts as ccxt sends amounts (inf where the venue publishes no cap); ``trigger``: a
    stop or take-profit market order."""
    market = exchange.market(symbol)
    info = market.get("info") or {}
    amount_max = ((market.get("limits") or {}).get("amount") or {}).get("max")
    if kind == "limit":
        cap = amount_max
    elif exchange.id == "okx":
        cap = info.get("maxStopSz" if trigger else "maxMktSz")
    elif exchange.id == "bybit":
        cap = (info.get("lotSizeFilter") or {}).get("maxMktOrderQty") or amount_max
    else:
        cap = ((market.get("limits") or {}).get("market") or {}).get("max") or amount_max
    cap = float(cap or 0.0)
    return cap if cap > 0.0 else math.inf
