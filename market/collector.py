"""Collect OHLCV, mark-price OHLCV and funding history of linear perpetuals via ccxt.

Usage (what ``quantum data collect`` does)::

    exchange = make_exchange("binanceusdm")                 # market.exchanges
    config = CollectConfig(exchange="binanceusdm", symbols=["BTC/USDT:USDT"], since="2024-01-01")
    report = collect(exchange, ParquetStore("data"), config, progress=callback)

How it stays correct:
- Resumable. Each series starts at max(since, stored end + one step), so a rerun
  fetches only what is missing; pages are appended to the store every
  `flush_every_pages` pages (each write is one atomic file), and on any error the
  pages fetched so far are written before the error propagates.
- Windowed pagination. Every request is bounded by a start and an end holding at
  most one page of rows, so it returns the same rows whether an exchange pages
  oldest-first (binance) or newest-first (bybit, okx). A window whose start comes
  back missing is asked for again, so an exchange that silently serves fewer rows
  than asked leaves no hole. `since` strictly increases, so the loop ends.
- Only closed bars are stored (open time + timeframe <= exchange clock - grace).
- ccxt.NetworkError (timeouts, rate limits, DDoS protection, unavailable) is retried
  with capped exponential backoff and jitter; ccxt.ExchangeError (bad symbol,
  authentication, ...) is permanent. Both end in a CollectorError that names the
  series and says what to do.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import ccxt
import pandas as pd

from market.collect_types import (
    CollectConfig,
    CollectReport,
    ProgressCallback,
    SeriesProgress,
    SeriesReport,
)
from market.exchanges import (
    CollectorError,
    check_symbols,
    check_timeframe,
    describe_error,
    error_hint,
    max_page_limit,
    protect,
    until_params,
)
from market.schema import (
    TIMESTAMP,
    Kind,
    columns_of,
    timeframe_ms,
    to_ms,
)
from market.store import ParquetStore, SeriesKey
from market.validate import DataValidationError

log = logging.getLogger(__name__)

MIN_FUNDING_INTERVAL_MS: Final = 3600 * 1000
"""Shortest funding interval venues use (1 h): a funding window of `limit` hours can
never hold more than one page of events."""
CLOSE_GRACE_MS: Final = 5_000
"""A bar counts as closed this long after its close time, which absorbs clock skew
between this machine and the exchange."""
_METHODS: Final = {
    Kind.OHLCV: "fetchOHLCV",
    Kind.MARK: "fetchMarkOHLCV",
    Kind.FUNDING: "fetchFundingRateHistory",
}


@dataclass(frozen=True)
class _Task:
    key: SeriesKey
    method: str
    step_ms: int
    limit: int
    window_ms: int
    start_ms: int
    end_ms: int


@dataclass
class _State:
    buffer: list[list[float]] = field(default_factory=list)
    pages: int = 0
    unflushed_pages: int = 0
    retries: int = 0
    written: int = 0


def _ts(ms: int) -> pd.Timestamp:
    """Epoch milliseconds (ccxt's unit) as a UTC Timestamp (the store's and the user's unit)."""
    return pd.Timestamp(ms, unit="ms", tz="UTC")


class Collector:
    """Collects the configured series from one ccxt exchange into one store (see module doc)."""

    def __init__(
        self,
        exchange: ccxt.Exchange,
        store: ParquetStore,
        config: CollectConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        progress: ProgressCallback | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if exchange.id != config.exchange:
            raise ValueError(
                f"config is for {config.exchange!r} but the exchange is {exchange.id!r}"
            )
        protect(exchange)
        self.exchange, self.store, self.config = exchange, store, config
        self._sleep, self._progress = sleep, progress
        self._rng = rng or random.Random()
        self._setup = _State()

    def run(self) -> CollectReport:
        """Collect every configured series; raises CollectorError on a failure."""
        self._call("load_markets", self._setup, self.exchange.load_markets)
        check_timeframe(self.exchange, self.config.timeframe)
        markets = check_symbols(self.exchange, self.config.symbols)
        tasks, skipped = self._plan(markets)
        reports = tuple(self._collect(task) for task in tasks)
        return CollectReport(self.exchange.id, reports, tuple(skipped), self._setup.retries)

    def _plan(self, markets: dict[str, dict]) -> tuple[list[_Task], list[tuple[SeriesKey, str]]]:
        """One task per (symbol, kind), starting where the store ends; unsupported kinds skipped."""
        tasks, skipped = [], []
        for symbol in self.config.symbols:
            for kind in self.config.kinds:
                key = self._key(symbol, kind)
                if not self.exchange.has.get(_METHODS[kind]):
                    reason = f"{self.exchange.id} does not support {_METHODS[kind]}"
                    log.warning("skipping %s: %s", key, reason)
                    skipped.append((key, reason))
                    continue
                tasks.append(self._task(key, markets[symbol]))
        return tasks, skipped

    def _key(self, symbol: str, kind: Kind) -> SeriesKey:
        """Store identity of a series: the ccxt id names the exchange; funding has no timeframe."""
        if kind is Kind.FUNDING:
            return SeriesKey.funding(self.exchange.id, symbol)
        return SeriesKey.bars(self.exchange.id, symbol, self.config.timeframe, kind)

    def _task(self, key: SeriesKey, market: dict) -> _Task:
        """Start = max(since, listing, stored end + step); end = until, capped at now."""
        kind, now = key.kind, int(self.exchange.milliseconds())
        step = 1 if kind is Kind.FUNDING else timeframe_ms(self.config.timeframe)
        until = now if self.config.until is None else to_ms(pd.Timestamp(self.config.until))
        if kind is Kind.FUNDING:
            end = min(until, now + 1)
        else:
            end = min(until, (now - CLOSE_GRACE_MS) // step * step)
        start = -(-to_ms(pd.Timestamp(self.config.since)) // step) * step
        created = market.get("created")
        if created:
            start = max(start, int(created) // step * step)
        last = self.store.last_timestamp(key)
        if last is not None:
            start = max(start, to_ms(last) + step)
        cap = max_page_limit(self.exchange, kind)
        limit = min(self.config.page_limit or cap, cap)
        window = limit * (MIN_FUNDING_INTERVAL_MS if kind is Kind.FUNDING else step)
        return _Task(key, _METHODS[kind], step, limit, window, start, end)

    def _collect(self, task: _Task) -> SeriesReport:
        """Fetch window after window into the store; flush what was fetched even on failure."""
        state = _State()
        log.info("collecting %s from %s to %s", task.key, _ts(task.start_ms), _ts(task.end_ms))
        self._report(task, state, task.start_ms)
        try:
            since = task.start_ms
            while since < task.end_ms:
                until = min(since + task.window_ms, task.end_ms) - 1
                rows = [
                    r
                    for r in self._window(task, state, since, until)
                    if since <= r[0] < task.end_ms
                ]
                since = int(rows[-1][0]) + task.step_ms if rows else until + 1
                state.buffer.extend(rows)
                state.unflushed_pages += 1
                if state.unflushed_pages >= self.config.flush_every_pages:
                    self._flush(task, state)
                self._report(task, state, min(since, task.end_ms))
        except BaseException:
            self._flush(task, state)
            raise
        self._flush(task, state)
        self._report(task, state, task.end_ms, done=True)
        log.info("%s: stored %d rows from %d pages", task.key, state.written, state.pages)
        stored_until = self.store.last_timestamp(task.key)
        start, target = _ts(task.start_ms), _ts(task.end_ms)
        return SeriesReport(
            task.key, start, target, state.written, state.pages, state.retries, stored_until
        )

    def _window(self, task: _Task, state: _State, since: int, until: int) -> list[list[float]]:
        """Rows in [since, until]; re-asks for a missing window start until it comes back empty."""
        rows = self._page(task, state, since, until)
        if task.key.kind is Kind.FUNDING:
            return rows
        while rows and rows[0][0] > since:
            first = rows[0][0]
            earlier = [r for r in self._page(task, state, since, int(first) - 1) if r[0] < first]
            if not earlier:
                break
            rows = earlier + rows
        return rows

    def _page(self, task: _Task, state: _State, since: int, until: int) -> list[list[float]]:
        """One request through ccxt's unified method, as rows [timestamp_ms, values...]."""
        fetch = getattr(self.exchange, task.method)
        params = until_params(self.exchange, task.key.kind, until)
        what = f"{task.method} for {task.key} from {_ts(since).isoformat()}"
        if task.key.kind is Kind.FUNDING:
            raw = self._call(what, state, fetch, task.key.symbol, since, task.limit, params)
        else:
            raw = self._call(
                what, state, fetch, task.key.symbol, task.key.timeframe, since, task.limit, params
            )
        state.pages += 1
        return _rows(task.key, raw)

    def _call(self, what: str, state: _State, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ccxt, retrying NetworkError with backoff; any other ccxt error is permanent."""
        for attempt in range(self.config.max_retries + 1):
            try:
                return fn(*args)
            except ccxt.NetworkError as exc:
                if attempt >= self.config.max_retries:
                    raise CollectorError(
                        f"{what} failed after {attempt + 1} attempts: {describe_error(exc)}. "
                        "Everything fetched before is stored; run the same command again "
                        "to resume (check the network or the exchange status first)."
                    ) from exc
                delay = self._backoff(attempt)
                retry = f"retry {attempt + 1}/{self.config.max_retries}"
                log.warning("%s: %s; %s in %.1fs", what, describe_error(exc), retry, delay)
                state.retries += 1
                self._sleep(delay)
            except ccxt.BaseError as exc:
                raise CollectorError(
                    f"{what} was rejected (not retried): {describe_error(exc)}. "
                    f"{error_hint(exc, self.exchange.id)}"
                ) from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _backoff(self, attempt: int) -> float:
        """Capped exponential delay with 'equal jitter': in [d/2, d), d = base * 2**attempt."""
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**attempt)
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def _flush(self, task: _Task, state: _State) -> None:
        """Append the buffered rows to the store as one atomic file."""
        rows, state.buffer, state.unflushed_pages = state.buffer, [], 0
        if not rows:
            return
        source = f"ccxt {ccxt.__version__} {self.exchange.id} {task.method}"
        try:
            state.written += self.store.append(task.key, _frame(task.key.kind, rows), source)
        except DataValidationError as exc:
            raise CollectorError(
                f"{self.exchange.id} returned data for {task.key} that breaks the data "
                f"contract, so it was not stored: {exc}"
            ) from exc

    def _report(self, task: _Task, state: _State, position: int, done: bool = False) -> None:
        """Tell the progress callback, if any, how far the series has been fetched."""
        if self._progress is None:
            return
        start, at, target = _ts(task.start_ms), _ts(position), _ts(task.end_ms)
        fetched = state.written + len(state.buffer)
        event = SeriesProgress(
            task.key, start, at, target, fetched, state.written, state.pages, done
        )
        self._progress(event)


def collect(
    exchange: ccxt.Exchange,
    store: ParquetStore,
    config: CollectConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
    progress: ProgressCallback | None = None,
    rng: random.Random | None = None,
) -> CollectReport:
    """Collect `config` from `exchange` into `store` (see Collector); returns the report."""
    return Collector(exchange, store, config, sleep=sleep, progress=progress, rng=rng).run()


def _rows(key: SeriesKey, raw: list[Any]) -> list[list[float]]:
    """ccxt's parsed rows as [timestamp_ms, values...]; a missing value is corrupt data.

    Mark-price bars get volume 0 (mark prices do not trade; exchanges send 0 or nothing).
    """
    if key.kind is Kind.FUNDING:
        rows = [[r.get("timestamp"), r.get("fundingRate")] for r in raw]
    else:
        rows = [list(r[:6]) for r in raw]
        if key.kind is Kind.MARK:
            for row in rows:
                row[5] = 0.0
    for row in rows:
        if any(v is None for v in row):
            raise CollectorError(f"{key}: the exchange sent a row with missing values: {row}")
    return rows


def _frame(kind: Kind, rows: list[list[float]]) -> pd.DataFrame:
    """Rows as a store frame (UTC ns index, float64), sorted, one row per timestamp."""
    index = pd.to_datetime([int(r[0]) for r in rows], unit="ms", utc=True).as_unit("ns")
    frame = pd.DataFrame(
        [r[1:] for r in rows],
        index=index.rename(TIMESTAMP),
        columns=list(columns_of(kind)),
        dtype="float64",
    ).sort_index()
    return frame[~frame.index.duplicated(keep="first")]
