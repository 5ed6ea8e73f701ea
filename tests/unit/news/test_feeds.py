"""Feeds: selection, conditional fetching and parsing of recorded RSS/Atom documents."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
from pydantic import ValidationError

from news.assets import DEFAULT_ASSETS
from news.feeds import (
    DEFAULT_FEEDS,
    NO_TITLE,
    Feed,
    FeedError,
    HttpCache,
    fetch_feed,
    parse_feed,
    select_feeds,
)
from tests.unit.news.fakes import COINDESK, Doc, FakeSession, fixture

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FEEDS = {f.name: f for f in DEFAULT_FEEDS}


def parse(name: str, feed: str, content_type: str | None = "application/rss+xml"):
    return parse_feed(fixture(name), FEEDS[feed], T0, DEFAULT_ASSETS, content_type)


def by_title(parsed):
    return {r.title: r for r in parsed.records}


def test_rss_with_cdata_and_media_tags_becomes_clean_records():
    parsed = parse("coindesk.xml", "coindesk")

    records = by_title(parsed)
    assert list(records) == [
        "Bitcoin Tops $98K as Spot ETF Inflows Return",
        "Ether Jumps 8% & Solana Follows",
        "SEC Approves First Spot Solana ETFs",
        "Binance Lists New USDC-Margined Perpetual Contracts",
    ]
    first = records["Bitcoin Tops $98K as Spot ETF Inflows Return"]
    assert first.published == datetime(2026, 12, 1, 10, 13, 50, tzinfo=UTC)
    assert first.first_seen == T0
    assert first.source == "coindesk"
    assert first.summary.startswith("Net inflows into U.S.-listed spot bitcoin ETFs")
    assert first.url.startswith("https://www.coindesk.com/markets/2026/12/01/bitcoin-tops")
    assert "&utm_source=rss" in first.url
    assert first.assets == ("BTC",)
    assert records["Ether Jumps 8% & Solana Follows"].assets == ("ETH", "SOL")
    assert "<" not in records["Ether Jumps 8% & Solana Follows"].summary


def test_entries_without_title_are_skipped_and_counted():
    parsed = parse("coindesk.xml", "coindesk")

    assert parsed.skipped == {NO_TITLE: 1}
    assert all(r.title for r in parsed.records)


def test_an_entry_without_a_date_keeps_a_null_published():
    records = by_title(parse("coindesk.xml", "coindesk"))

    assert records["Binance Lists New USDC-Margined Perpetual Contracts"].published is None


def test_rss_dates_with_offsets_zone_names_and_no_zone_are_converted_to_utc():
    records = by_title(parse("cointelegraph.xml", "cointelegraph"))

    xrp = records["XRP price eyes $3 as Ripple secures another banking license"]
    assert xrp.published == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # 11:30 +0200
    assert records['BNB Chain rolls out "Maxwell" upgrade'].published == datetime(
        2026, 12, 1, 8, 0, tzinfo=UTC)  # 03:00 EST
    assert records["Tether mints $1B as stablecoin supply hits record"].published == datetime(
        2026, 12, 1, 7, 15, tzinfo=UTC)  # no zone: UTC


def test_html_summaries_lose_images_and_tags():
    records = by_title(parse("cointelegraph.xml", "cointelegraph"))

    xrp = records["XRP price eyes $3 as Ripple secures another banking license"]
    assert xrp.summary == (
        "Ripple’s new license lets it offer custody in the EU, and XRP traders took note."
    )
    assert xrp.assets == ("XRP",)


def test_the_same_story_in_two_feeds_has_one_hash_despite_different_markup():
    coindesk = by_title(parse("coindesk.xml", "coindesk"))
    cointelegraph = by_title(parse("cointelegraph.xml", "cointelegraph"))

    title = "SEC Approves First Spot Solana ETFs"
    assert coindesk[title].hash == cointelegraph[title].hash
    assert coindesk[title].published != cointelegraph[title].published


def test_atom_entries_use_published_else_updated_in_utc():
    records = by_title(parse("decrypt_atom.xml", "decrypt", "application/atom+xml"))

    solana = records["Solana DEX volume beats Ethereum for a third month"]
    assert solana.published == datetime(2026, 12, 1, 6, 30, tzinfo=UTC)  # 08:30 +02:00
    assert solana.summary == "Traders moved to Solana for cheaper swaps."
    assert solana.url == "https://decrypt.co/310001/solana-dex-volume-beats-ethereum"
    assert records["Why XBT futures basis widened overnight"].published == datetime(
        2026, 12, 1, 7, 0, tzinfo=UTC)  # updated only, naive
    assert records["Why XBT futures basis widened overnight"].assets == ("BTC",)
    assert records["The week ahead in crypto"].published is None  # unreadable date


def test_a_truncated_feed_keeps_the_entries_before_the_damage_with_a_warning():
    parsed = parse("theblock_truncated.xml", "theblock")

    assert [r.title for r in parsed.records] == [
        "Bitcoin miners sell as hashprice slumps",
        "Ethereum validators queue hits a year high",
    ]
    assert parsed.warning is not None
    assert "damaged feed" in parsed.warning


def test_a_feed_damaged_before_any_entry_is_a_feed_error():
    with pytest.raises(FeedError, match=r"bitcoinmagazine: damaged feed, no entry readable"):
        parse("bitcoinmagazine_broken.xml", "bitcoinmagazine")


def test_an_html_page_instead_of_a_feed_is_a_feed_error():
    with pytest.raises(FeedError, match=r"did not return an RSS/Atom feed \(text/html; charset"):
        parse("not_a_feed.html", "coindesk", "text/html; charset=utf-8")


def test_a_valid_feed_served_as_text_html_is_not_called_damaged():
    parsed = parse("coindesk.xml", "coindesk", "text/html")

    assert len(parsed.records) == 4
    assert parsed.warning is None


def test_a_valid_empty_feed_is_not_an_error():
    empty = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>'

    parsed = parse_feed(empty, FEEDS["coindesk"], T0, DEFAULT_ASSETS, "application/rss+xml")

    assert parsed.records == ()
    assert parsed.warning is None


def test_select_feeds_takes_names_and_urls_and_names_unknown_urls_from_host_and_path():
    chosen = select_feeds(f"decrypt, {COINDESK}, https://www.Example.com/crypto/feed.xml")

    assert [f.name for f in chosen] == ["decrypt", "coindesk", "example.com-crypto-feed.xml"]
    assert chosen[2].url == "https://www.Example.com/crypto/feed.xml"
    assert select_feeds(None) == DEFAULT_FEEDS
    assert select_feeds("coindesk,coindesk") == (FEEDS["coindesk"],)


def test_select_feeds_rejects_unknown_names_and_empty_lists():
    with pytest.raises(ValueError, match=r"unknown feed 'coindsk'.*coindesk, cointelegraph"):
        select_feeds("coindsk")
    with pytest.raises(ValueError, match="no feeds given"):
        select_feeds(" , ")


def test_feed_config_is_frozen_and_checks_its_fields():
    with pytest.raises(ValidationError, match="http"):
        Feed(name="x", url="ftp://example.com/feed")
    with pytest.raises(ValidationError):
        Feed(name="Bad Name", url="https://example.com/feed")
    with pytest.raises(ValidationError):
        FEEDS["coindesk"].url = "https://elsewhere"  # type: ignore[misc]


def test_fetch_sends_conditional_headers_only_for_the_cached_url_and_304_means_nothing_new():
    session = FakeSession({COINDESK: Doc(fixture("coindesk.xml"), etag='W/"cd-1"',
                                         last_modified="Tue, 01 Dec 2026 10:00:00 GMT")})
    feed = FEEDS["coindesk"]

    first = fetch_feed(session, feed, HttpCache())
    second = fetch_feed(session, feed, first.cache)
    elsewhere = fetch_feed(session, feed, HttpCache("https://old.example/rss", 'W/"cd-1"'))

    assert not first.not_modified and first.content.startswith(b"<?xml")
    assert first.cache == HttpCache(COINDESK, 'W/"cd-1"', "Tue, 01 Dec 2026 10:00:00 GMT")
    assert "If-None-Match" not in session.calls[0][1]
    assert session.calls[1][1]["If-None-Match"] == 'W/"cd-1"'
    assert session.calls[1][1]["If-Modified-Since"] == "Tue, 01 Dec 2026 10:00:00 GMT"
    assert second.not_modified and second.content == b"" and second.cache == first.cache
    assert "If-None-Match" not in session.calls[2][1] and not elsewhere.not_modified


def test_fetch_turns_http_errors_and_network_failures_into_feed_errors():
    feed = FEEDS["coindesk"]
    down = FakeSession({COINDESK: requests.ConnectionError("connection refused")})
    missing = FakeSession({})

    with pytest.raises(FeedError, match=r"coindesk: .* unreachable \(ConnectionError"):
        fetch_feed(down, feed, HttpCache())
    with pytest.raises(FeedError, match=r"coindesk: HTTP 404 Not Found from https://www\.coindesk"):
        fetch_feed(missing, feed, HttpCache())
