"""collect(): every default feed plus CryptoPanic over recorded documents; dedup across
sources and runs, first_seen kept, 304s, per-source failures, and resuming after a crash."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
import requests

from news.collect import CollectResult, collect
from news.cryptopanic import SOURCE, TOKEN_ENV
from news.feeds import DEFAULT_FEEDS, NO_TITLE
from news.store import NewsStore, NewsStoreError
from tests.unit.news.fakes import (
    COINDESK,
    COINTELEGRAPH,
    CRYPTOPANIC_1,
    CRYPTOPANIC_2,
    DECRYPT,
    THEBLOCK,
    TOKEN,
    Clock,
    Doc,
    FakeSession,
    cryptopanic_routes,
    feed_routes,
    fixture,
)

FEEDS = {f.name: f for f in DEFAULT_FEEDS}
READABLE = tuple(FEEDS[n] for n in ("coindesk", "cointelegraph", "decrypt", "theblock"))


def all_routes():
    return {**feed_routes(), **cryptopanic_routes()}


def row(result: CollectResult, source: str):
    (found,) = [s for s in result.sources if s.source == source]
    return found


def test_a_first_run_stores_every_source_and_reports_each(tmp_path):
    store, clock = NewsStore(tmp_path), Clock()

    result = collect(store, DEFAULT_FEEDS, FakeSession(all_routes()), clock, TOKEN)

    assert [s.source for s in result.sources] == [*FEEDS, SOURCE]
    coindesk = row(result, "coindesk")
    assert (coindesk.fetched, coindesk.new, coindesk.duplicates) == (4, 4, 0)
    assert coindesk.skipped == {NO_TITLE: 1} and coindesk.error is None
    cointelegraph = row(result, "cointelegraph")  # its Solana ETF story is CoinDesk's
    assert (cointelegraph.fetched, cointelegraph.new, cointelegraph.duplicates) == (4, 3, 1)
    assert (row(result, "decrypt").new, row(result, "theblock").new) == (3, 2)
    assert "damaged feed" in row(result, "theblock").note
    assert "bitcoinmagazine: damaged feed" in row(result, "bitcoinmagazine").error
    panic = row(result, SOURCE)
    assert (panic.fetched, panic.new, panic.skipped) == (4, 4, {NO_TITLE: 1})
    assert result.new == 16
    assert len(store.read()) == 16
    assert [e.source for e in result.errors] == ["bitcoinmagazine"]


def test_first_seen_is_read_from_the_clock_after_each_response(tmp_path):
    store, clock = NewsStore(tmp_path), Clock()

    collect(store, READABLE, FakeSession(feed_routes()), clock, use_cryptopanic=False)

    frame = store.read()
    stamps = frame.groupby("source")["first_seen"].unique()
    assert {s: list(v) for s, v in stamps.items()} == {
        name: [pd.Timestamp(clock.readings[2 * i])]
        for i, name in enumerate(["coindesk", "cointelegraph", "decrypt", "theblock"])
    }
    assert frame["first_seen"].is_monotonic_increasing


def test_a_second_run_uses_304s_stores_nothing_and_keeps_first_seen(tmp_path):
    store = NewsStore(tmp_path)
    routes = all_routes()
    collect(store, DEFAULT_FEEDS, FakeSession(routes), Clock(), TOKEN)
    before = store.read()
    session = FakeSession(routes)

    later = Clock(datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    result = collect(store, DEFAULT_FEEDS, session, later, TOKEN)

    sent = dict(session.calls)
    assert sent[COINDESK]["If-None-Match"] == 'W/"cd-1"'
    assert sent[COINTELEGRAPH]["If-Modified-Since"] == "Tue, 01 Dec 2026 10:01:09 GMT"
    assert [s.source for s in result.sources if s.not_modified] == [
        "coindesk", "cointelegraph", "decrypt"]
    assert row(result, "coindesk").fetched == 0
    theblock = row(result, "theblock")  # no validators: a full 200, all known
    assert (theblock.fetched, theblock.new, theblock.duplicates) == (2, 0, 2)
    assert session.urls()[-1] == CRYPTOPANIC_1  # page 1 reaches the last id: no page 2
    assert row(result, SOURCE).duplicates == 3
    assert result.new == 0
    pd.testing.assert_frame_equal(store.read(), before)


def test_a_changed_feed_adds_only_its_new_items(tmp_path):
    store = NewsStore(tmp_path)
    collect(store, READABLE, FakeSession(feed_routes()), Clock(), use_cryptopanic=False)
    first_seen = store.read().set_index("title")["first_seen"]
    routes = feed_routes()
    extra = (b"<item><title>Bitcoin hashrate record</title><description>New high."
             b"</description><pubDate>Tue, 01 Dec 2026 13:00:00 +0000</pubDate></item>")
    body = fixture("coindesk.xml").replace(b"<item>", extra + b"<item>", 1)
    routes[COINDESK] = Doc(body, etag='W/"cd-2"')

    later = datetime(2026, 12, 1, 13, 5, tzinfo=UTC)
    result = collect(store, READABLE, FakeSession(routes), Clock(later), use_cryptopanic=False)

    assert (row(result, "coindesk").fetched, row(result, "coindesk").new) == (5, 1)
    frame = store.read().set_index("title")
    assert frame.loc["Bitcoin hashrate record", "first_seen"] == pd.Timestamp(later)
    pd.testing.assert_series_equal(frame["first_seen"].loc[first_seen.index], first_seen)
    assert store.load_state("coindesk")["etag"] == 'W/"cd-2"'


def test_without_a_token_cryptopanic_is_skipped_with_a_note(tmp_path):
    session = FakeSession(all_routes())

    result = collect(NewsStore(tmp_path), READABLE, session, Clock())

    panic = row(result, SOURCE)
    assert panic.error is None
    assert panic.note == f"skipped: no token (set {TOKEN_ENV} in the environment or .env)"
    assert CRYPTOPANIC_1 not in session.urls()


def test_use_cryptopanic_false_leaves_it_out_entirely(tmp_path):
    result = collect(NewsStore(tmp_path), READABLE, FakeSession(all_routes()), Clock(), TOKEN,
                     use_cryptopanic=False)

    assert SOURCE not in [s.source for s in result.sources]


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (requests.Timeout("read timed out"), r"coindesk: .* unreachable \(Timeout"),
        (Doc(b"busy", status=503), r"coindesk: HTTP 503"),
        (Doc(fixture("not_a_feed.html"), content_type="text/html"), r"did not return an RSS"),
    ],
)
def test_a_failing_feed_is_reported_and_the_others_are_collected(tmp_path, route, message):
    routes = feed_routes()
    routes[COINDESK] = route
    store = NewsStore(tmp_path)

    result = collect(store, READABLE, FakeSession(routes), Clock(), use_cryptopanic=False)

    coindesk = row(result, "coindesk")
    assert re.search(message, coindesk.error or "")
    assert (coindesk.fetched, coindesk.new) == (0, 0)
    assert row(result, "cointelegraph").new == 4  # the shared story is now its own
    assert store.load_state("coindesk") == {}


def test_a_corrupt_state_file_fails_only_its_source(tmp_path):
    store = NewsStore(tmp_path)
    path = store.state_path("decrypt")
    path.parent.mkdir(parents=True)
    path.write_text('{"etag": "x"')

    result = collect(store, READABLE, FakeSession(feed_routes()), Clock(), use_cryptopanic=False)

    assert f"state file {path}" in row(result, "decrypt").error
    assert [s.source for s in result.errors] == ["decrypt"]
    assert row(result, "coindesk").new == 4
    assert path.read_text() == '{"etag": "x"'


def test_a_damaged_store_stops_the_run(tmp_path):
    store = NewsStore(tmp_path)
    collect(store, READABLE[:1], FakeSession(feed_routes()), Clock(), use_cryptopanic=False)
    (store.directory / "month=2026-12" / "data.parquet").write_bytes(b"PAR1 torn")

    with pytest.raises(NewsStoreError, match=r"month=2026-12/data\.parquet"):
        collect(store, READABLE[1:], FakeSession(feed_routes()), Clock(), use_cryptopanic=False)


def test_a_crash_mid_collection_keeps_what_was_stored_and_a_rerun_completes_it(tmp_path):
    store = NewsStore(tmp_path)
    crashing = feed_routes()
    crashing[DECRYPT] = KeyboardInterrupt()

    with pytest.raises(KeyboardInterrupt):
        collect(store, READABLE, FakeSession(crashing), Clock(), use_cryptopanic=False)

    assert set(store.read()["source"]) == {"coindesk", "cointelegraph"}
    assert store.load_state("coindesk")["etag"] == 'W/"cd-1"'
    assert store.load_state("decrypt") == {}
    session = FakeSession(feed_routes())
    result = collect(store, READABLE, session, Clock(datetime(2026, 12, 1, 12, 5, tzinfo=UTC)),
                     use_cryptopanic=False)
    assert row(result, "coindesk").not_modified and row(result, "cointelegraph").not_modified
    assert (row(result, "decrypt").new, row(result, "theblock").new) == (3, 2)
    clean = NewsStore(tmp_path / "clean")
    collect(clean, READABLE, FakeSession(feed_routes()), Clock(), use_cryptopanic=False)
    assert sorted(store.read()["hash"]) == sorted(clean.read()["hash"])


def test_a_crash_between_cryptopanic_pages_keeps_page_one_and_resumes_from_the_top(tmp_path):
    store = NewsStore(tmp_path)
    routes = cryptopanic_routes()
    routes[CRYPTOPANIC_2] = KeyboardInterrupt()

    with pytest.raises(KeyboardInterrupt):
        collect(store, (), FakeSession(routes), Clock(), TOKEN)

    assert len(store.read()) == 3
    assert store.load_state(SOURCE) == {}
    session = FakeSession(cryptopanic_routes())
    result = collect(store, (), session, Clock(), TOKEN)
    assert session.urls() == [CRYPTOPANIC_1, CRYPTOPANIC_2]
    panic = row(result, SOURCE)
    assert (panic.fetched, panic.new, panic.duplicates) == (4, 1, 3)
    state = store.load_state(SOURCE)
    assert state["last_id"] == 24100005
    assert state["last_published"] == "2026-12-01T10:40:12.000+00:00"


def test_a_cryptopanic_failure_is_its_row_and_never_shows_the_token(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    routes = cryptopanic_routes()
    routes[CRYPTOPANIC_2] = requests.ConnectionError(
        f"HTTPSConnectionPool(host='cryptopanic.com'): Max retries exceeded with url: "
        f"/api/v1/posts/?auth_token={TOKEN}&kind=news&public=true&page=2")
    store = NewsStore(tmp_path)

    result = collect(store, (), FakeSession(routes), Clock(), TOKEN)

    panic = row(result, SOURCE)
    assert "unreachable (ConnectionError" in panic.error
    assert TOKEN not in panic.error and TOKEN not in caplog.text
    assert (panic.fetched, panic.new) == (3, 3)
    assert store.load_state(SOURCE) == {}  # not advanced: the next run pages from the top


def test_a_naive_clock_is_refused(tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        collect(NewsStore(tmp_path), READABLE[:1], FakeSession(feed_routes()),
                lambda: datetime(2026, 12, 1), use_cryptopanic=False)


def test_the_clock_may_run_in_any_zone_and_is_stored_as_utc(tmp_path):
    store = NewsStore(tmp_path)
    plus2 = datetime(2026, 12, 1, 16, 0, tzinfo=timezone(timedelta(hours=2)))

    collect(store, READABLE[:1], FakeSession(feed_routes()), lambda: plus2,
            use_cryptopanic=False)

    assert set(store.read()["first_seen"]) == {pd.Timestamp("2026-12-01 14:00", tz="UTC")}


def test_urls_hit_are_only_the_configured_ones(tmp_path):
    session = FakeSession(all_routes())

    collect(NewsStore(tmp_path), READABLE[3:], session, Clock(), TOKEN)

    assert session.urls() == [THEBLOCK, CRYPTOPANIC_1, CRYPTOPANIC_2]
