"""Record helpers of news.schema: time parsing into UTC, cleaning, identity, and the asset
detector of news.assets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from news.assets import DEFAULT_ASSETS, AssetMap
from news.schema import NewsRecord, content_hash, parse_time, records_table

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tue, 01 Dec 2026 11:30:00 +0200", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("Tue, 01 Dec 2026 03:00:00 EST", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
        ("Tue, 01 Dec 2026 09:00:00 GMT", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("Tue, 01 Dec 2026 07:15:00", datetime(2026, 12, 1, 7, 15, tzinfo=UTC)),
        ("2026-12-01T10:40:12Z", datetime(2026, 12, 1, 10, 40, 12, tzinfo=UTC)),
        ("2026-12-01T08:30:00+02:00", datetime(2026, 12, 1, 6, 30, tzinfo=UTC)),
        ("2026-12-01T07:00:00", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
    ],
)
def test_parse_time_converts_offsets_and_zone_names_to_utc_and_reads_naive_as_utc(
    text, expected
):
    parsed = parse_time(text)

    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", [None, "", "   ", "sometime last week", "32 Foo 2026"])
def test_parse_time_gives_none_for_missing_or_unreadable_dates(text):
    assert parse_time(text) is None


def test_create_cleans_html_and_the_hash_ignores_markup_and_case():
    record = NewsRecord.create(
        source="x", title="Ether <em>Jumps</em> 8% &amp; Solana Follows",
        summary="<p>ETH led <b>majors</b>.</p>", published=None, first_seen=T0,
    )

    assert record.title == "Ether Jumps 8% & Solana Follows"
    assert record.summary == "ETH led majors ."
    assert record.hash == content_hash("ether jumps 8% & solana follows", "ETH LED MAJORS .")


def test_create_stores_times_in_utc_at_millisecond_precision():
    local = datetime(2026, 12, 1, 14, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))

    record = NewsRecord.create(source="x", title="t", published=local, first_seen=local)

    assert record.first_seen == datetime(2026, 12, 1, 12, 0, 0, 123_000, tzinfo=UTC)
    assert record.first_seen.tzinfo == UTC
    assert record.published == record.first_seen


def test_create_refuses_a_naive_first_seen_and_an_empty_title():
    with pytest.raises(ValueError, match="timezone-aware"):
        NewsRecord.create(source="x", title="t", published=None,
                          first_seen=datetime(2026, 12, 1))
    with pytest.raises(ValueError, match="needs a title"):
        NewsRecord.create(source="x", title="<p> </p>", published=None, first_seen=T0)


def test_records_table_follows_the_schema():
    record = NewsRecord.create(source="x", title="t", published=None, first_seen=T0,
                               assets=("BTC", "ETH"))

    table = records_table([record])

    assert table.column("assets").to_pylist() == [["BTC", "ETH"]]
    assert table.column("published").to_pylist() == [None]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bitcoin tops $98K", ("BTC",)),
        ("$BTC and ETH/USDT rally", ("BTC", "ETH")),
        ("Why XBT futures basis widened", ("BTC",)),
        ("Tether mints $1B", ()),
        ("A solution for ethics", ()),
        ("SOLANA and sol", ("SOL",)),
        ("Binance   Coin and Ripple", ("BNB", "XRP")),
        ("ether's slide; Ethereum devs", ("ETH",)),
    ],
)
def test_detect_matches_whole_words_case_insensitively(text, expected):
    assert DEFAULT_ASSETS.detect(text) == expected


def test_detect_reports_codes_in_map_order_across_title_and_summary():
    assert DEFAULT_ASSETS.detect("XRP news", "with bitcoin") == ("BTC", "XRP")


def test_a_custom_map_replaces_the_default():
    assets = AssetMap(aliases={"DOGE": ("dogecoin", "doge")})

    assert assets.detect("Dogecoin outpaces Bitcoin") == ("DOGE",)
    assert assets.known(["doge", "BTC"]) == ("DOGE",)


def test_known_keeps_only_mapped_codes():
    assert DEFAULT_ASSETS.known(["OMG", "eth", "BTC", ""]) == ("BTC", "ETH")


def test_asset_map_rejects_bad_codes_empty_aliases_and_unknown_keys():
    with pytest.raises(ValidationError, match="upper-case"):
        AssetMap(aliases={"btc": ("bitcoin",)})
    with pytest.raises(ValidationError, match="at least one"):
        AssetMap(aliases={"BTC": ()})
    with pytest.raises(ValidationError, match="Extra inputs"):
        AssetMap(aliases={"BTC": ("bitcoin",)}, words=1)
