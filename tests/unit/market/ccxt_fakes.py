"""Offline exchange APIs that drive ccxt's real exchange classes in tests.

`FakeSession` replaces ``exchange.session``, the requests session that ccxt's
``Exchange.fetch(url, method, headers, body)`` sends through. That is one level
below ``exchange.fetch`` on purpose: ccxt's own request building, signing, debug
logging, JSON decoding and error mapping (each exchange's ``handle_errors`` and
the HTTP status table) all run for real, so an injected binance HTTP 429 becomes
ccxt.DDoSProtection exactly as it would in production.

Each venue answers in its exchange's native JSON, pages like the real API
(binance oldest first from startTime; bybit and okx newest first within a range),
serves a deterministic generated truth (`truth_bars`, `truth_funding`), records
every request, and raises AssertionError on a URL it has no route for. No network
is used and nothing sleeps unless `page_delay_s` is set.
"""

from __future__ import annotations

import functools
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import ccxt
import numpy as np
import pandas as pd
import requests

from market.exchanges import make_exchange
from market.schema import TIMESTAMP, asset_of

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ccxt"
DATA_START = 1_704_067_200_000
"""2024-01-01T00:00Z: the first bar and the first funding event of every fake market."""
MINUTE, HOUR = 60_000, 3_600_000
NOW = DATA_START + 3 * 1440 * MINUTE + 30_000
"""Default exchange clock: 2024-01-04T00:00:30Z, 30 s into a bar that must not be stored."""
HORIZON = 6 * 1440
FUNDING_HOURS = {"BTC": 8, "ETH": 4}
BAR_TIMES = DATA_START + np.arange(HORIZON, dtype=np.int64) * MINUTE
Outcome = tuple[int, Any] | BaseException
Route = Callable[[dict[str, str]], tuple[int, Any]]


def fixture(exchange_id: str, name: str) -> Any:
    """A hand-written native response under tests/fixtures/ccxt/<exchange>/ (a fresh copy)."""
    return json.loads((FIXTURES / exchange_id / name).read_text())


def error(exchange_id: str, name: str) -> tuple[int, Any]:
    """A native error response (HTTP status, JSON body) from <exchange>/errors.json."""
    entry = fixture(exchange_id, "errors.json")[name]
    return entry["status"], entry["body"]


def _rng(*parts: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("|".join(parts).encode()))


@functools.cache
def _bar_units(asset: str, kind: str) -> np.ndarray:
    """Integer bars (open, high, low, close in 0.1 ticks; volume in 0.001): exact as decimals."""
    rng, base = _rng(asset, kind), {"BTC": 420_000, "ETH": 23_000}[asset]
    close = base + np.cumsum(rng.integers(-40, 41, HORIZON))
    open_ = np.r_[base, close[:-1]]
    high = np.maximum(open_, close) + rng.integers(0, 25, HORIZON)
    low = np.minimum(open_, close) - rng.integers(0, 25, HORIZON)
    return np.stack([open_, high, low, close, rng.integers(1_000, 900_000, HORIZON)], axis=1)


@functools.cache
def _funding_units(asset: str) -> tuple[np.ndarray, np.ndarray]:
    """Funding event times and rates (in 1e-8) every FUNDING_HOURS[asset] hours."""
    step = FUNDING_HOURS[asset] * HOUR
    times = np.arange(DATA_START, DATA_START + HORIZON * MINUTE, step, dtype=np.int64)
    return times, _rng(asset, "funding").integers(-3_000, 15_000, len(times))


def _dec(units: int, places: int) -> str:
    """Integer units as the decimal string an exchange sends: _dec(420001, 1) == '42000.1'."""
    whole, frac = divmod(abs(int(units)), 10**places)
    return f"{'-' if units < 0 else ''}{whole}.{frac:0{places}d}"


def _index(times: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True), name=TIMESTAMP).as_unit(
        "ns"
    )


def truth_bars(symbol: str, kind: str, start: int, end: int) -> pd.DataFrame:
    """The bars every venue serves for `symbol`, open times in [start, end), as stored."""
    times = BAR_TIMES
    sel = (times >= start) & (times < end)
    units = _bar_units(asset_of(symbol), kind)[sel]
    frame = pd.DataFrame(units[:, :4] / 10, columns=["open", "high", "low", "close"])
    frame["volume"] = 0.0 if kind == "mark" else units[:, 4] / 1000
    return frame.set_index(_index(times[sel]))


def truth_funding(symbol: str, start: int, end: int) -> pd.DataFrame:
    """The funding events every venue serves for `symbol`, times in [start, end), as stored."""
    times, rates = _funding_units(asset_of(symbol))
    sel = (times >= start) & (times < end)
    return pd.DataFrame({"funding_rate": rates[sel] / 1e8}, index=_index(times[sel]))


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class _Fault:
    paths: tuple[str, ...]
    after: int
    outcomes: list[Outcome]
    seen: int = 0


@dataclass
class FakeVenue:
    """One exchange's public API over the generated truth (subclasses: routes and formats)."""

    exchange_id: ClassVar[str]
    ids: ClassVar[dict[str, str]]
    """Native market id -> asset of the truth it serves."""
    paths: ClassVar[dict[str, tuple[str, ...]]]
    """Kind ('ohlcv', 'mark', 'funding') -> the API paths serving it."""
    now_ms: int = NOW
    page_delay_s: float = 0.0
    page_cap: int | None = None
    """Serve at most this many rows per page, silently (as some exchanges do)."""
    received: list[Request] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)

    def routes(self) -> dict[str, Route]:
        raise NotImplementedError

    def window_start(self, request: Request) -> int | None:
        """The first timestamp a data request asks for (its native start parameter)."""
        raise NotImplementedError

    def inject(self, kind: str, *outcomes: Outcome, after: int = 0) -> None:
        """Answer requests for `kind`, after the first `after` of them, with `outcomes` in
        order: an (HTTP status, JSON body) pair, or an exception to raise (as requests would)."""
        self._faults.append(_Fault(self.paths[kind], after, list(outcomes)))

    def requests_for(self, kind: str) -> list[Request]:
        return [r for r in self.received if r.path in self.paths[kind]]

    def starts(self, kind: str) -> list[int | None]:
        """The first timestamp each request for `kind` asked for (its native start param)."""
        return [self.window_start(r) for r in self.requests_for(kind)]

    def handle(self, method: str, url: str, headers: dict[str, str],
               body: str | bytes | None = None) -> tuple[int, Any]:
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        if isinstance(body, bytes):
            body = body.decode()
        if body:  # signed POSTs carry their parameters in a urlencoded body
            params.update(parse_qsl(body))
        self.received.append(Request(method, parts.path, params, headers))
        for fault in self._faults:
            if parts.path in fault.paths:
                fault.seen += 1
                if fault.seen > fault.after and fault.outcomes:
                    outcome = fault.outcomes.pop(0)
                    if isinstance(outcome, BaseException):
                        raise outcome
                    return outcome
        route = self.routes().get(parts.path)
        if route is None:
            raise AssertionError(f"fake {self.exchange_id}: no route for {method} {url}")
        if self.page_delay_s and any(parts.path in p for p in self.paths.values()):
            time.sleep(self.page_delay_s)
        return route(params)

    def _pick(self, times: np.ndarray, lo: int, hi: int, limit: int, newest_first: bool):
        """Indices of `times` in [lo, min(hi, now)]: the first `limit`, or the newest reversed."""
        limit = min(limit, self.page_cap or limit)
        idx = np.flatnonzero((times >= lo) & (times <= min(hi, self.now_ms)))
        return idx[-limit:][::-1] if newest_first else idx[:limit]

    def _bar_strings(self, asset: str, kind: str, i: int) -> list[str]:
        o, h, low, c, v = _bar_units(asset, kind)[i]
        return [_dec(o, 1), _dec(h, 1), _dec(low, 1), _dec(c, 1), _dec(v, 3)]


class BinanceVenue(FakeVenue):
    """binanceusdm: fapi v1; klines oldest first from startTime (max 1500), errors as HTTP 4xx."""

    exchange_id = "binanceusdm"
    ids: ClassVar = {"BTCUSDT": "BTC", "ETHUSDT": "ETH"}
    paths: ClassVar = {
        "ohlcv": ("/fapi/v1/klines",),
        "mark": ("/fapi/v1/markPriceKlines",),
        "funding": ("/fapi/v1/fundingRate",),
    }

    def routes(self) -> dict[str, Route]:
        return {
            "/fapi/v1/exchangeInfo": lambda p: (
                200,
                fixture(self.exchange_id, "fapi_v1_exchangeInfo.json"),
            ),
            "/fapi/v1/klines": lambda p: self._klines(p, "ohlcv"),
            "/fapi/v1/markPriceKlines": lambda p: self._klines(p, "mark"),
            "/fapi/v1/fundingRate": self._funding,
            "/sapi/v1/capital/config/getall": lambda p: (200, []),
            "/sapi/v1/margin/allPairs": lambda p: (200, []),
        }

    def window_start(self, request: Request) -> int | None:
        return int(request.params["startTime"]) if "startTime" in request.params else None

    def _klines(self, p: dict[str, str], kind: str) -> tuple[int, Any]:
        asset = self.ids.get(p["symbol"])
        if asset is None:
            return error(self.exchange_id, "invalid_symbol_400")
        assert p["interval"] == "1m" and int(p["limit"]) <= 1500, p
        lo, hi = int(p.get("startTime", 0)), int(p.get("endTime", self.now_ms))
        picked = self._pick(BAR_TIMES, lo, hi, int(p["limit"]), "startTime" not in p)
        rows = []
        for i in sorted(picked):
            ts, values = int(BAR_TIMES[i]), self._bar_strings(asset, kind, i)
            volume = "0" if kind == "mark" else values[4]
            rows.append([ts, *values[:4], volume, ts + MINUTE - 1, "0", 60, "0", "0", "0"])
        return 200, rows

    def _funding(self, p: dict[str, str]) -> tuple[int, Any]:
        asset = self.ids[p["symbol"]]
        times, rates = _funding_units(asset)
        lo, hi = int(p.get("startTime", 0)), int(p.get("endTime", self.now_ms))
        limit = int(p.get("limit", 100))
        assert limit <= 1000, p
        picked = self._pick(times, lo, hi, limit, newest_first=False)
        return 200, [
            {
                "symbol": p["symbol"],
                "fundingTime": int(times[i]),
                "fundingRate": _dec(rates[i], 8),
                "markPrice": "42000.00000000",
            }
            for i in picked
        ]


class BybitVenue(FakeVenue):
    """bybit v5: klines and funding newest first within [start, end]; errors as retCode."""

    exchange_id = "bybit"
    ids: ClassVar = {"BTCUSDT": "BTC", "ETHUSDT": "ETH"}
    paths: ClassVar = {
        "ohlcv": ("/v5/market/kline",),
        "mark": ("/v5/market/mark-price-kline",),
        "funding": ("/v5/market/funding/history",),
    }

    def routes(self) -> dict[str, Route]:
        return {
            "/v5/market/instruments-info": self._instruments,
            "/v5/market/kline": lambda p: self._kline(p, "ohlcv"),
            "/v5/market/mark-price-kline": lambda p: self._kline(p, "mark"),
            "/v5/market/funding/history": self._funding,
            "/v5/market/risk-limit": self._risk_limit,
        }

    def window_start(self, request: Request) -> int | None:
        value = request.params.get("start", request.params.get("startTime"))
        return None if value is None else int(value)

    def _ok(self, result: dict[str, Any]) -> tuple[int, Any]:
        return 200, {
            "retCode": 0,
            "retMsg": "OK",
            "result": result,
            "retExtInfo": {},
            "time": self.now_ms,
        }

    def _instruments(self, p: dict[str, str]) -> tuple[int, Any]:
        assert p["category"] == "linear", p
        if p.get("status") == "PreLaunch":
            return self._ok({"category": "linear", "list": [], "nextPageCursor": ""})
        return 200, fixture(self.exchange_id, "v5_market_instruments-info_linear.json")

    def _risk_limit(self, p: dict[str, str]) -> tuple[int, Any]:
        """v5 market/risk-limit of one symbol: its tiers by riskLimitValue (the position
        value each tier ends at), mmDeduction the tier's maintenance amount."""
        assert p["category"] == "linear", p
        tiers = fixture(self.exchange_id, "v5_market_risk-limit_linear.json").get(p["symbol"])
        if tiers is None:
            return error(self.exchange_id, "params_error_10001")
        return self._ok({"category": "linear", "list": tiers, "nextPageCursor": ""})

    def _kline(self, p: dict[str, str], kind: str) -> tuple[int, Any]:
        asset = self.ids.get(p["symbol"])
        if asset is None:
            return error(self.exchange_id, "params_error_10001")
        assert p["category"] == "linear" and p["interval"] == "1" and int(p["limit"]) <= 1000, p
        lo, hi = int(p.get("start", 0)), int(p.get("end", self.now_ms))
        rows = []
        for i in self._pick(BAR_TIMES, lo, hi, int(p["limit"]), newest_first=True):
            values = self._bar_strings(asset, kind, i)
            extra = [] if kind == "mark" else [values[4], "0"]
            rows.append([str(BAR_TIMES[i]), *values[:4], *extra])
        return self._ok({"symbol": p["symbol"], "category": "linear", "list": rows})

    def _funding(self, p: dict[str, str]) -> tuple[int, Any]:
        assert ("startTime" in p) == ("endTime" in p) and int(p["limit"]) <= 200, p
        times, rates = _funding_units(self.ids[p["symbol"]])
        lo, hi = int(p.get("startTime", 0)), int(p.get("endTime", self.now_ms))
        picked = self._pick(times, lo, hi, int(p["limit"]), newest_first=True)
        rows = [
            {
                "symbol": p["symbol"],
                "fundingRate": _dec(rates[i], 8),
                "fundingRateTimestamp": str(times[i]),
            }
            for i in picked
        ]
        return self._ok({"category": "linear", "list": rows})


class OkxVenue(FakeVenue):
    """okx v5: newest first strictly between `before` and `after`; errors as `code`."""

    exchange_id = "okx"
    ids: ClassVar = {"BTC-USDT-SWAP": "BTC", "ETH-USDT-SWAP": "ETH"}
    paths: ClassVar = {
        "ohlcv": ("/api/v5/market/history-candles", "/api/v5/market/candles"),
        "mark": ("/api/v5/market/history-mark-price-candles", "/api/v5/market/mark-price-candles"),
        "funding": ("/api/v5/public/funding-rate-history",),
    }
    _CT_VAL: ClassVar = {"BTC": 100, "ETH": 10}

    def routes(self) -> dict[str, Route]:
        candles = lambda kind, cap: lambda p: self._candles(p, kind, cap)  # noqa: E731
        return {
            "/api/v5/public/instruments": self._instruments,
            "/api/v5/market/candles": candles("ohlcv", 300),
            "/api/v5/market/history-candles": candles("ohlcv", 300),
            "/api/v5/market/mark-price-candles": candles("mark", 100),
            "/api/v5/market/history-mark-price-candles": candles("mark", 100),
            "/api/v5/public/funding-rate-history": self._funding,
            "/api/v5/asset/currencies": lambda p: (200, {"code": "0", "data": [], "msg": ""}),
        }

    def window_start(self, request: Request) -> int | None:
        before = request.params.get("before")
        return None if before is None else int(before) + 1

    def _bounds(self, p: dict[str, str]) -> tuple[int, int]:
        lo = int(p["before"]) + 1 if "before" in p else 0
        return lo, int(p["after"]) - 1 if "after" in p else self.now_ms

    def _instruments(self, p: dict[str, str]) -> tuple[int, Any]:
        assert p == {"instType": "SWAP"}, p
        return 200, fixture(self.exchange_id, "api_v5_public_instruments_SWAP.json")

    def _candles(self, p: dict[str, str], kind: str, max_limit: int) -> tuple[int, Any]:
        asset = self.ids.get(p["instId"])
        if asset is None:
            return 200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
        assert p["bar"] == "1m" and int(p["limit"]) <= max_limit, p
        rows = []
        for i in self._pick(BAR_TIMES, *self._bounds(p), int(p["limit"]), newest_first=True):
            values = self._bar_strings(asset, kind, i)
            confirm = "1" if BAR_TIMES[i] + MINUTE <= self.now_ms else "0"
            contracts = _dec(_bar_units(asset, kind)[i][4] * self._CT_VAL[asset], 3)
            extra = [] if kind == "mark" else [contracts, values[4], "0"]
            rows.append([str(BAR_TIMES[i]), *values[:4], *extra, confirm])
        return 200, {"code": "0", "msg": "", "data": rows}

    def _funding(self, p: dict[str, str]) -> tuple[int, Any]:
        assert int(p.get("limit", 100)) <= 100, p
        times, rates = _funding_units(self.ids[p["instId"]])
        picked = self._pick(times, *self._bounds(p), int(p.get("limit", 100)), newest_first=True)
        rows = [
            {
                "formulaType": "noRate",
                "fundingRate": _dec(rates[i], 8),
                "fundingTime": str(times[i]),
                "instId": p["instId"],
                "instType": "SWAP",
                "method": "current_period",
                "realizedRate": _dec(rates[i], 8),
            }
            for i in picked
        ]
        return 200, {"code": "0", "msg": "", "data": rows}


VENUES: dict[str, type[FakeVenue]] = {
    v.exchange_id: v for v in (BinanceVenue, BybitVenue, OkxVenue)
}


class FakeSession(requests.Session):
    """A requests session whose every request is answered by a FakeVenue."""

    def __init__(self, venue: FakeVenue) -> None:
        super().__init__()
        self.venue = venue

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        status, body = self.venue.handle(method, url, dict(kwargs.get("headers") or {}),
                                         kwargs.get("data"))
        response = requests.Response()
        response.status_code, response.url = status, url
        response.reason = HTTPStatus(status).phrase
        response.headers["Content-Type"] = "application/json"
        response._content = json.dumps(body).encode()
        return response


def fake_exchange(venue: FakeVenue, env: dict[str, str] | None = None) -> ccxt.Exchange:
    """ccxt's real exchange class for `venue`, built by make_exchange, talking to the venue.

    The rate limiter is off (nothing waits) and the exchange clock is the venue's.
    """
    exchange = make_exchange(venue.exchange_id, env=env or {}, enable_rate_limit=False)
    exchange.session = FakeSession(venue)
    exchange.milliseconds = lambda: venue.now_ms
    return exchange
