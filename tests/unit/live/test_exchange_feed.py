"""The live feed against ccxt's real binanceusdm class over a fake venue with a moving
clock: closed bars only, each once, arrays equal to a later full load, held back until
their funding is in, errors and stale data reported, restarts resuming from the store."""

import numpy as np
import pandas as pd
import pytest

from envs.data import MarketArrays
from live.feed import ExchangeFeed
from market.loader import load_aligned
from market.store import ParquetStore
from tests.unit.market.ccxt_fakes import (
    DATA_START,
    MINUTE,
    BinanceVenue,
    error,
    fake_exchange,
)

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
START = DATA_START + 2 * 1440 * MINUTE + 20 * MINUTE + 30_000
"""The exchange's clock at the first poll: 30 s into the bar opened at 00:20 on day 3."""


def _feed(tmp_path, venue, **kwargs):
    exchange = fake_exchange(venue)

    def sleep(seconds):  # the exchange's clock moves while the loop sleeps
        venue.now_ms += int(seconds * 1000)

    settings = {"poll_s": 60.0, "stale_bars": 3.0, "complete_wait_s": 120.0, "max_polls": 8}
    return ExchangeFeed(exchange, ParquetStore(tmp_path), SYMBOLS, "1m",
                        pd.Timestamp(DATA_START, unit="ms", tz="UTC"), sleep=sleep,
                        **{**settings, **kwargs})


def _ns(ms):
    return ms * 1_000_000


def test_each_closed_bar_arrives_once_with_the_arrays_a_later_full_load_gives(tmp_path):
    venue = BinanceVenue(now_ms=START)
    feed = _feed(tmp_path, venue)
    first = feed.start()
    assert first.bar_time == _ns(START - 30_000 - MINUTE)  # the last closed bar, not the open one
    ticks = list(feed.ticks(first.bar_time))
    times = [t.bar_time for t in ticks]
    assert times == [first.bar_time + _ns(MINUTE) * (k + 1) for k in range(len(times))]
    assert len(times) == 6 and all(t.data is not None and t.errors == 0 for t in ticks)
    full = MarketArrays.from_aligned(load_aligned(ParquetStore(tmp_path), "binanceusdm",
                                                  list(SYMBOLS), "1m"))
    for tick in ticks:
        b = tick.data.n_bars - 1
        assert full.timestamps[b] == tick.bar_time
        np.testing.assert_array_equal(tick.data.mkt, full.mkt[: b + 1])
        np.testing.assert_array_equal(tick.data.feats, full.feats[: b + 1])


def test_a_restart_resumes_from_the_store_and_the_last_traded_bar(tmp_path):
    venue = BinanceVenue(now_ms=START)
    feed = _feed(tmp_path, venue, max_polls=3)
    first = feed.start()
    seen = [t.bar_time for t in feed.ticks(first.bar_time)]
    requests_before = len(venue.requests_for("ohlcv"))
    again = _feed(tmp_path, venue, max_polls=2)
    resumed = [t.bar_time for t in again.ticks(seen[-1])]
    assert resumed[0] == seen[-1] + _ns(MINUTE)
    # the second feed asked only for bars after the stored ones, not for days of history
    assert len(venue.requests_for("ohlcv")) - requests_before <= 2 * 2 * 2


def test_a_bar_closing_at_a_funding_time_waits_for_its_rate(tmp_path):
    before_funding = DATA_START + 2 * 1440 * MINUTE + 4 * 60 * MINUTE - 2 * MINUTE  # ETH: 4 h
    venue = BinanceVenue(now_ms=before_funding + 30_000)
    feed = _feed(tmp_path, venue, max_polls=8, complete_wait_s=600.0)
    first = feed.start()
    venue.inject("funding", *[(200, [])] * 6, after=0)  # the rate is late by several polls
    ticks = list(feed.ticks(first.bar_time))
    funding_bar = _ns(DATA_START + 2 * 1440 * MINUTE + 4 * 60 * MINUTE - MINUTE)
    times = [t.bar_time for t in ticks]
    assert funding_bar in times
    tick = ticks[times.index(funding_bar)]
    polls_waited = times.index(funding_bar) - times.index(funding_bar - _ns(MINUTE))
    assert polls_waited == 1  # arrived together with the next bars once the rate came in
    assert tick.data.mkt[-1, 1, 7] == 1.0  # ETH's funding event is on that bar


def test_a_429_storm_is_retried_then_reported_as_errors_without_a_bar(tmp_path):
    venue = BinanceVenue(now_ms=START)
    feed = _feed(tmp_path, venue, max_polls=4)
    first = feed.start()
    venue.inject("ohlcv", *[error("binanceusdm", "too_many_requests_429")] * 40)
    ticks = list(feed.ticks(first.bar_time))
    assert ticks and all(t.data is None for t in ticks)
    assert [t.errors for t in ticks] == list(range(1, len(ticks) + 1))
    assert "429" in feed.last_error or "rate" in feed.last_error.lower()


def test_no_new_bar_for_stale_bars_lengths_is_reported_as_stale(tmp_path):
    venue = BinanceVenue(now_ms=START)
    feed = _feed(tmp_path, venue, max_polls=6)
    first = feed.start()
    venue.inject("ohlcv", *[(200, [])] * 100)  # the exchange answers, with no bars
    ticks = list(feed.ticks(first.bar_time))
    # silent at first (a bar may just be late), then stale past 3 bar lengths
    assert ticks and all(t.data is None and t.stale and t.errors == 0 for t in ticks)
    assert len(ticks) < feed.polls - 1


def test_nothing_stored_is_a_clear_timeout(tmp_path):
    venue = BinanceVenue(now_ms=START)
    venue.inject("ohlcv", *[(200, [])] * 100)
    with pytest.raises(TimeoutError, match="no bars"):
        _feed(tmp_path, venue, max_polls=2).start()
