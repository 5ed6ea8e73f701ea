"""From the book's working orders to exchange orders: what one bar sends through ccxt.

The env is the order scheduler. After a decision the book holds, per asset, a working
order (signed quantity left, style, bars left, clip, limit price) and its protective
stops (envs.core.decide.place_orders); each bar the simulator executes a share of it
(envs.core.execution.work_orders). On an exchange the same share becomes a child order
sent at the bar's close, so a testnet session follows the schedule its backtest models:

- market, and funding-aware unless the kernel's own rule defers it: the whole remainder,
  a market order;
- TWAP: the remainder over the bars left, a market order per bar; VWAP the same at send
  time (the simulator scales each slice by the bar's realised volume, which is not known
  before the bar);
- limit (iceberg): one clip, a post-only limit at the book's limit price, cancelled if
  unfilled when the next bar closes;
- stops: a reduce-only stop-market at the stop-loss and a reduce-only take-profit-market
  for the whole position, replaced whenever the book moves them.

Every order carries a deterministic client order id (:func:`client_order_id`: run, bar,
asset, leg), so an order re-sent after a crash is the same order to the exchange and
reconciliation can tell what was sent. Quantities and prices are rounded with ccxt's
``amount_to_precision``/``price_to_precision``; an order under the market's minimum
amount or notional is skipped with the reason, never rounded up into a bigger one; a
reduce-only order (a stop, or an entry that closes the position) rounds to the nearest
step instead, so it closes what the exchange holds rather than leaving a step behind.
Pre-trade, no order may take an asset's notional beyond the account's per-asset budget
or the book beyond its gross leverage: it is cut to fit (and says so).

An order bigger than the venue takes in one (live.dialects.max_order_amount: e.g. 120 BTC
in a market order on binanceusdm, 12,000 contracts on okx) is sent as equal parts, each
under the cap and a whole number of steps, with its own client id (the part number after
the leg), so a large rebalance executes as the simulator assumes instead of being refused;
past MAX_PARTS the rest is skipped with the reason.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import ccxt
import numpy as np

from envs.config import EnvConfig, ExecStyle
from envs.core.execution import _defer_for_funding
from envs.core.layout import (
    BARS_LEFT,
    CLIP,
    LIMIT_PX,
    M_CLOSE,
    QTY,
    REMAIN,
    SL_PX,
    STYLE,
    TP_PX,
)
from live.dialects import max_order_amount

Leg = Literal["entry", "stop_loss", "take_profit", "flatten"]
LEG_CODES: dict[str, str] = {"entry": "e", "stop_loss": "s", "take_profit": "t",
                             "flatten": "f"}
ID_LENGTH = 32
"""okx allows 32 alphanumeric characters; binance 36 of [.A-Z:/a-z0-9_-], bybit 36."""
MAX_PARTS = 20
"""The most orders one leg of one asset is split into in a bar (a venue's rate limits
and a misread cap are the risks of more)."""


def contract_size(exchange: ccxt.Exchange, symbol: str) -> float:
    """Base units per contract: ccxt's order amounts are in contracts (okx: 0.01 BTC per
    BTC-USDT-SWAP contract; binanceusdm and bybit: 1, amounts are base units)."""
    return float(exchange.market(symbol).get("contractSize") or 1.0)


def amount_step(exchange: ccxt.Exchange, symbol: str) -> float:
    """The market's smallest order increment in base units (0 when unknown)."""
    step = float(exchange.market(symbol)["precision"]["amount"] or 0.0)
    return step * contract_size(exchange, symbol)


def client_order_id(run: str, bar_time_ms: int, asset_index: int, leg: Leg,
                    part: int = 0) -> str:
    """A deterministic id of one order: the same run, bar, asset, leg and part always give
    the same id (so a re-send after a crash is recognised), different ones never collide
    in practice (64 bits of the run's hash, the bar in base 36). Alphanumeric, at most 32;
    part 0 (an order sent whole) has no part number."""
    digest = hashlib.sha256(run.encode()).hexdigest()[:16]
    text = f"q{digest}{np.base_repr(bar_time_ms // 1000, 36).lower()}" \
           f"{asset_index:02d}{LEG_CODES[leg]}{part or ''}"
    if len(text) > ID_LENGTH:
        raise ValueError(f"client order id {text!r} is longer than {ID_LENGTH}")
    return text


@dataclass(frozen=True)
class OrderIntent:
    """One exchange order, fully specified before it is sent (and persisted first)."""

    client_id: str
    symbol: str
    asset: str
    leg: Leg
    side: Literal["buy", "sell"]
    type: Literal["market", "limit"]
    amount: float
    """In contracts, as sent (base units where a contract is one: see contract_size)."""
    price: float | None = None
    stop_price: float | None = None
    reduce_only: bool = False
    post_only: bool = False

    def params(self) -> dict[str, Any]:
        """ccxt's unified create_order params for this intent."""
        out: dict[str, Any] = {"clientOrderId": self.client_id}
        if self.reduce_only:
            out["reduceOnly"] = True
        if self.post_only:
            out["postOnly"] = True
        if self.leg == "stop_loss":
            out["stopLossPrice"] = self.stop_price
        elif self.leg == "take_profit":
            out["takeProfitPrice"] = self.stop_price
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Skipped:
    asset: str
    leg: Leg
    amount: float
    reason: str


@dataclass
class BarOrders:
    """What one bar sends, and what it left out or cut (with the reasons)."""

    orders: list[OrderIntent] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)


def planned_share(book: np.ndarray, mkt: np.ndarray, params: np.ndarray, a: int,
                  t: int) -> float:
    """The signed quantity of asset a's working order to execute in the bar after t (see
    the module docstring); 0 when the kernel would defer or nothing is working."""
    remain = book[a, REMAIN]
    if remain == 0.0:
        return 0.0
    style = int(book[a, STYLE])
    if style == ExecStyle.FUNDING_AWARE and _defer_for_funding(book, mkt, params, a, t + 1):
        return 0.0
    if style in (ExecStyle.MARKET, ExecStyle.FUNDING_AWARE):
        return remain
    if style in (ExecStyle.TWAP, ExecStyle.VWAP):
        left = book[a, BARS_LEFT]
        return remain if left <= 1.0 else remain / left
    return remain if abs(remain) <= book[a, CLIP] else math.copysign(book[a, CLIP], remain)


def translate(exchange: ccxt.Exchange, run: str, bar_time_ms: int, symbols: dict[str, str],
              book: np.ndarray, mkt: np.ndarray, params: np.ndarray, t: int,
              config: EnvConfig, equity: float) -> BarOrders:
    """The entry orders of the bar after t for a book (kernel rows, in ``symbols``' asset
    order: asset -> ccxt symbol) at equity ``equity``; the exchange's markets loaded."""
    out = BarOrders()
    close = mkt[t, :, M_CLOSE]
    budget = config.limits.max_leverage * equity
    per_asset = config.limits.max_concentration * budget
    gross = float(np.sum(np.abs(book[:, QTY]) * close))
    for a, (asset, symbol) in enumerate(symbols.items()):
        qty = planned_share(book, mkt, params, a, t)
        if qty == 0.0:
            continue
        held = book[a, QTY]
        grow = abs(held + qty) - abs(held)
        if grow > 0.0:
            room = min(per_asset - abs(held) * close[a], budget - gross) / close[a]
            if grow > max(room, 0.0) * (1.0 + 1e-12):
                cut = math.copysign(abs(held) + max(room, 0.0), held + qty) - held
                out.cut.append(f"{asset}: {abs(qty):g} cut to {abs(cut):g} by the pre-trade "
                               "per-asset and gross leverage caps")
                qty = cut
            gross += (abs(held + qty) - abs(held)) * close[a]
        limit = int(book[a, STYLE]) == ExecStyle.LIMIT
        step = amount_step(exchange, symbol)
        closes = bool(abs(held + qty) < step)  # to flat: the whole position, nearest step
        out.orders += _orders(exchange, (run, bar_time_ms, a), symbol, asset, "entry", qty,
                              "limit" if limit else "market",
                              book[a, LIMIT_PX] if limit else None, close[a],
                              reduce_only=closes, post_only=limit, skipped=out.skipped)
    return out


def protective_orders(exchange: ccxt.Exchange, run: str, bar_time_ms: int,
                      symbols: dict[str, str], book: np.ndarray, position: np.ndarray,
                      close: np.ndarray) -> BarOrders:
    """Reduce-only stop-loss and take-profit orders for each open ``position`` (signed base
    quantity per asset, as the exchange holds it) at the book's stop prices. Stops set for
    the other direction (a decision reversing the position sets the new side's stops while
    the old side is still held: a short's stop-loss above its take-profit on a long) are
    skipped, as the simulator ignores them (envs.core.execution.check_stops): sent, the
    old side's reduce-only orders at those prices would trigger at once and close what
    the book is still working out of (or be refused as immediately triggering)."""
    out = BarOrders()
    for a, (asset, symbol) in enumerate(symbols.items()):
        qty = float(position[a])
        if qty == 0.0:
            continue
        sl, tp = float(book[a, SL_PX]), float(book[a, TP_PX])
        if sl > 0.0 and tp > 0.0 and (qty > 0.0) != (sl < tp):
            out.skipped += [Skipped(asset, leg, abs(qty), "stops set for the other direction "
                                    "(the position is being reversed)")
                            for leg in ("stop_loss", "take_profit")]
            continue
        for leg, slot in (("stop_loss", SL_PX), ("take_profit", TP_PX)):
            trigger = float(book[a, slot])
            if trigger <= 0.0:
                continue
            out.orders += _orders(exchange, (run, bar_time_ms, a), symbol, asset, leg, -qty,
                                  "market", None, close[a], reduce_only=True, post_only=False,
                                  skipped=out.skipped, stop_price=trigger)
    return out


def _orders(exchange, key, symbol, asset, leg, qty, kind, price, reference, reduce_only,
            post_only, skipped, stop_price=None) -> list[OrderIntent]:
    """The intents of one leg, ``key`` = (run, bar time, asset index): one order, or equal
    parts under the venue's cap, with ccxt's rounding and the market's minimums (none:
    skipped, why recorded)."""
    market = exchange.market(symbol)
    unit = contract_size(exchange, symbol)
    step = float(market["precision"]["amount"] or 0.0)
    size = abs(qty) / unit  # contracts, as ccxt sends amounts
    if reduce_only and step > 0.0:  # a closing order matches the position, not a step less
        size = round(size / step) * step * (1.0 + 1e-12)
    try:
        amount = float(exchange.amount_to_precision(symbol, size))
    except ccxt.InvalidOrder as err:
        skipped.append(Skipped(asset, leg, abs(qty), f"below the amount precision ({err})"))
        return []
    limits = market.get("limits") or {}
    min_amount = (limits.get("amount") or {}).get("min") or 0.0
    min_cost = (limits.get("cost") or {}).get("min") or 0.0
    if amount <= 0.0 or amount < min_amount:
        skipped.append(Skipped(asset, leg, abs(qty), f"amount {amount:g} under the market's "
                               f"minimum {min_amount:g}"))
        return []
    notional = amount * (price or reference) * unit
    if notional < min_cost and not reduce_only:
        skipped.append(Skipped(asset, leg, abs(qty), f"notional {notional:.2f} under the "
                               f"market's minimum {min_cost:g}"))
        return []
    cap = max_order_amount(exchange, symbol, kind, stop_price is not None)
    parts = split_amount(amount, cap, step)
    if len(parts) > MAX_PARTS:
        left = sum(parts[MAX_PARTS:])
        skipped.append(Skipped(asset, leg, left * unit, f"{left:g} more than {MAX_PARTS} "
                               f"orders of the venue's maximum {cap:g} carry"))
        parts = parts[:MAX_PARTS]
    rounded = float(exchange.price_to_precision(symbol, price)) if price is not None else None
    trigger = float(exchange.price_to_precision(symbol, stop_price)) \
        if stop_price is not None else None
    numbered = len(parts) > 1
    return [OrderIntent(client_order_id(*key, leg, k + 1 if numbered else 0), symbol, asset,
                        leg, "buy" if qty > 0 else "sell", kind,
                        float(exchange.amount_to_precision(symbol, part * (1.0 + 1e-12))),
                        rounded, trigger, reduce_only, post_only)
            for k, part in enumerate(parts)]


def split_amount(amount: float, cap: float, step: float) -> list[float]:
    """``amount`` as the fewest equal parts no bigger than ``cap``, each a whole number of
    ``step`` (0: any size) and together exactly ``amount``."""
    if amount <= cap:
        return [amount]
    if step <= 0.0:
        n = math.ceil(amount / cap)
        return [amount / n] * n
    steps = round(amount / step)
    per_part = max(math.floor(cap / step + 1e-9), 1)
    n = -(-steps // per_part)
    base, extra = divmod(steps, n)
    return [(base + (k < extra)) * step for k in range(n)]
