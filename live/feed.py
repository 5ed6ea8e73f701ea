"""Feeds: the closed bars a session trades on, each with the market arrays up to it.

Every tick's arrays are built from bars up to and including that bar only (features,
costs and the funding schedule are all past-only, so they equal the same bars' values in
arrays built from a longer history: tests/unit/live/test_feed.py checks it bit for bit).

- :class:`ReplayFeed`: stored (or synthetic) bars of a span, delivered as if they
  arrived live: the parity check against ``quantum backtest``, and paper sessions on
  history.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from envs.data import MarketArrays
from live.session import Tick

if TYPE_CHECKING:
    from news.align import AlignedNews


@dataclass(frozen=True)
class NewsInput:
    """The news a trained run reads (its env_config ``news``, news.source.NewsConfig), for
    arrays built bar by bar."""

    config: Mapping[str, Any]
    market_dir: str | None = None
    aligned: AlignedNews | None = None
    """A replay's headlines aligned once to its whole span (alignment is causal, so each
    prefix takes the first rows); None: read from the store and aligned at every bar."""

    def __post_init__(self) -> None:
        if self.aligned is None and self.config.get("source", "synthetic") == "synthetic":
            raise ValueError("the synthetic news stream is generated from a whole span (its "
                             "headlines lead moves): align it once, or read collected news")

    def apply(self, data: MarketArrays) -> MarketArrays:
        from envs.news_features import with_news

        return with_news(data, self.config, self.market_dir, self.aligned)


def arrays_upto(frame: pd.DataFrame, bar: int, news: NewsInput | None = None) -> MarketArrays:
    """Market arrays of the aligned frame's bars 0..bar (nothing after ``bar``), with the
    news visible by then when the run reads news."""
    data = MarketArrays.from_aligned(frame.iloc[: bar + 1])
    return data if news is None else news.apply(data)


@dataclass
class ReplayFeed:
    """Bars ``first``..``last`` of an aligned frame, one at a time."""

    frame: pd.DataFrame
    first: int
    last: int
    news: NewsInput | None = None

    def start(self) -> Tick:
        """The session's first decision bar."""
        return Tick(int(self.frame.index.asi8[self.first]),
                    arrays_upto(self.frame, self.first, self.news))

    def _tick(self, bar: int) -> Tick:
        received = time.perf_counter()
        return Tick(int(self.frame.index.asi8[bar]), arrays_upto(self.frame, bar, self.news),
                    received=received)

    def ticks(self, last_bar: int) -> Iterator[Tick]:
        """Every bar after ``last_bar`` (ns) up to the span's end."""
        stamps = self.frame.index.asi8
        b = int(np.searchsorted(stamps, last_bar, side="right"))
        for bar in range(max(b, self.first + 1), self.last + 1):
            yield self._tick(bar)


@dataclass
class ExchangeFeed:
    """Closed bars from a ccxt exchange, kept in the store as `quantum data collect` keeps it.

    Every poll runs the collector (market.collector: resumable from the store, only bars
    closed by the exchange's clock, network errors and 429s retried with backoff, the
    store's validation and atomic writes), then reads the aligned frame back (the
    loader's gap policy) and yields each bar not yet traded. A bar is held back until
    it is complete: its mark-price bar stored for every symbol and, when it closes at a
    funding time (the last interval each symbol's funding has kept), that funding rate;
    past ``complete_wait_s`` it goes out as it is and an alert says what was missing.

    With no new bar for ``stale_bars`` bar lengths, or with consecutive failed polls, it
    yields a tick without data (``Tick.data is None``) so the session can trip its kill
    switch; the exchange's clock (``exchange.milliseconds``) measures staleness.
    """

    exchange: object
    store: object
    symbols: tuple[str, ...]
    timeframe: str
    since: pd.Timestamp
    """First bar the features read (the market's start); the collector starts there."""
    poll_s: float = 5.0
    stale_bars: float = 3.0
    complete_wait_s: float = 120.0
    compact_every: int = 120
    """Compact the store's series every this many polls (each poll appends small files)."""
    sleep: object = time.sleep
    max_polls: int | None = None
    """Stop after this many polls (tests; None: run until the session stops)."""
    on_incomplete: object = None
    """Called with a message when a bar goes out incomplete."""
    news: NewsInput | None = None
    """The run's news, read from the store at every bar (`quantum news collect` keeps it)."""

    def __post_init__(self) -> None:
        from market.schema import timeframe_ms

        self.tf_ns = timeframe_ms(self.timeframe) * 1_000_000
        self.errors = 0
        self.polls = 0
        self.last_error: str | None = None

    def _now_ns(self) -> int:
        return int(self.exchange.milliseconds()) * 1_000_000

    def poll(self) -> pd.DataFrame | None:
        """Collect what is new, then the aligned frame (None when nothing is stored yet)."""
        from market.collect_types import CollectConfig
        from market.collector import collect
        from market.exchanges import CollectorError
        from market.loader import load_aligned
        from market.validate import DataValidationError

        self.polls += 1
        config = CollectConfig(exchange=self.exchange.id, symbols=self.symbols,
                               since=self.since, timeframe=self.timeframe)
        try:
            collect(self.exchange, self.store, config, sleep=self.sleep)
            self.errors = 0
        except CollectorError as err:
            self.errors += 1
            self.last_error = str(err)
        if self.polls % self.compact_every == 0:
            for key in self.store.series():
                if key.exchange == self.exchange.id:
                    self.store.compact(key)
        try:
            return load_aligned(self.store, self.exchange.id, list(self.symbols), self.timeframe,
                                self.since)
        except DataValidationError:
            return None

    def start(self) -> Tick:
        """The last closed bar once the store holds enough (the session's first decision)."""
        while True:
            frame = self.poll()
            if frame is not None and len(frame):
                received = time.perf_counter()
                bar = len(frame) - 1
                return Tick(int(frame.index.asi8[bar]), arrays_upto(frame, bar, self.news),
                            self.errors,
                            received)
            if self.max_polls is not None and self.polls >= self.max_polls:
                raise TimeoutError(f"no bars for {list(self.symbols)} after {self.polls} polls: "
                                   f"{self.last_error or 'the exchange returned none'}")
            self.sleep(self.poll_s)

    def ticks(self, last_bar: int) -> Iterator[Tick]:
        """Bars after ``last_bar`` as they close; data-less ticks for stale data and errors."""
        while self.max_polls is None or self.polls < self.max_polls:
            frame = self.poll()
            received = time.perf_counter()
            sent = False
            if frame is not None:
                stamps = frame.index.asi8
                ready = self._complete_until(frame)
                for bar in np.flatnonzero(stamps > last_bar):
                    if stamps[bar] > ready:
                        break
                    yield Tick(int(stamps[bar]), arrays_upto(frame, int(bar), self.news),
                               self.errors,
                               received)
                    last_bar, sent = int(stamps[bar]), True
            stale = not sent and self._stale(last_bar)
            if not sent and (self.errors or stale):
                yield Tick(last_bar, None, self.errors, received, stale=stale)
            self.sleep(self.poll_s)

    def _stale(self, last_bar: int) -> bool:
        closed_by = last_bar + 2 * self.tf_ns  # the next bar's close
        return self._now_ns() - closed_by > self.stale_bars * self.tf_ns

    def _complete_until(self, frame: pd.DataFrame) -> int:
        """The last bar time whose marks and due funding are stored (or waited for enough)."""
        from market.schema import Kind
        from market.store import SeriesKey

        stamps = frame.index.asi8
        limit = int(stamps[-1])
        missing = []
        for symbol in self.symbols:
            key = SeriesKey.bars(self.exchange.id, symbol, self.timeframe, Kind.MARK)
            mark = self.store.last_timestamp(key)
            if mark is not None and mark.value < limit:
                limit, missing = mark.value, [*missing, f"{symbol} mark price"]
        asset_events = frame.xs("funding_event", axis=1, level=1).to_numpy()
        for j, symbol in enumerate(self.symbols):
            events = np.flatnonzero(asset_events[:, j] > 0)
            if len(events) < 2:
                continue
            interval = stamps[events[-1]] - stamps[events[-2]]
            due = int(stamps[events[-1]] + interval)  # the next bar to carry its rate
            if due <= limit:  # stored but unflagged: its rate is not in yet
                limit, missing = due - self.tf_ns, [*missing, f"{symbol} funding"]
        held_closed = limit + 2 * self.tf_ns  # when the first held-back bar closed
        if missing and self._now_ns() - held_closed > self.complete_wait_s * 1e9:
            if self.on_incomplete is not None:
                self.on_incomplete(f"bar {pd.Timestamp(limit, tz='UTC')} went out without "
                                   f"{', '.join(missing)}")
            return int(stamps[-1])
        return limit
