"""CryptoPanic client: paging, incremental stop, asset tags, token loading and redaction."""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime

import pytest
import requests

from news.assets import DEFAULT_ASSETS
from news.cryptopanic import (
    NO_TITLE,
    TOKEN_ENV,
    CryptoPanicConfig,
    CryptoPanicError,
    first_page_url,
    iter_pages,
    load_token,
    post_record,
    redact,
)
from tests.unit.news.fakes import (
    CRYPTOPANIC_1,
    CRYPTOPANIC_2,
    TOKEN,
    Clock,
    Doc,
    FakeSession,
    cryptopanic_routes,
    fixture,
)

CONFIG = CryptoPanicConfig()


def pages(session, since_id=None, config=CONFIG, clock=None):
    return list(iter_pages(session, TOKEN, since_id=since_id, assets=DEFAULT_ASSETS,
                           now=clock or Clock(), config=config))


def test_the_first_page_url_carries_token_kind_and_public():
    assert first_page_url(TOKEN, CONFIG) == CRYPTOPANIC_1


def test_pages_follow_next_until_it_is_null():
    session = FakeSession(cryptopanic_routes())
    clock = Clock()

    got = pages(session, clock=clock)

    assert session.urls() == [CRYPTOPANIC_1, CRYPTOPANIC_2]
    assert [p.ids for p in got] == [(24100005, 24100004, 24100003), (24100002, 24100001)]
    assert [len(p.records) for p in got] == [3, 1]
    assert got[1].skipped == {NO_TITLE: 1}
    assert got[0].records[0].first_seen == clock.readings[0]
    assert got[1].records[0].first_seen == clock.readings[1]


def test_posts_become_clean_records_with_utc_times_and_the_outlet_as_source():
    records = [r for p in pages(FakeSession(cryptopanic_routes())) for r in p.records]

    first = records[0]
    assert first.title == "Bitcoin ETF outflows slow as BTC steadies"
    assert first.source == "cryptopanic/coindesk.com"
    assert first.published == datetime(2026, 12, 1, 10, 40, 12, tzinfo=UTC)
    assert first.url == "https://cryptopanic.com/news/24100005/Bitcoin-ETF-outflows-slow-as-BTC-steadies"
    assert records[1].published == datetime(2026, 12, 1, 10, 31, 0, 418_000, tzinfo=UTC)


def test_assets_come_from_currency_tags_we_know_else_from_the_text():
    records = {r.title: r for p in pages(FakeSession(cryptopanic_routes())) for r in p.records}

    assert records["Bitcoin ETF outflows slow as BTC steadies"].assets == ("BTC",)
    # tagged ETH and OMG: OMG is not ours
    assert records["OmiseGO and Ethereum developers ship a joint rollup"].assets == ("ETH",)
    # no tags at all: the detector reads the title
    assert records["Solana fees fall to a two-year low"].assets == ("SOL",)
    # tagged only DOGE, which is not ours: the detector finds Bitcoin
    assert records["Dogecoin outpaces Bitcoin in weekly gains"].assets == ("BTC",)


def test_tags_win_over_the_text_when_one_of_them_is_ours():
    post = {"title": "Bitcoin rallies while Ripple lags", "currencies": [{"code": "XRP"}],
            "published_at": None}

    record = post_record(post, datetime(2026, 12, 1, tzinfo=UTC), DEFAULT_ASSETS)

    assert record.assets == ("XRP",)
    assert record.published is None
    assert record.source == "cryptopanic/unknown"


def test_paging_stops_at_the_page_that_reaches_the_last_seen_id():
    session = FakeSession(cryptopanic_routes())

    got = pages(session, since_id=24100003)

    assert session.urls() == [CRYPTOPANIC_1]
    assert len(got) == 1


def test_paging_stops_after_max_pages():
    session = FakeSession(cryptopanic_routes())

    pages(session, config=CryptoPanicConfig(max_pages=1))

    assert session.urls() == [CRYPTOPANIC_1]


def test_a_next_link_to_another_host_is_not_sent_the_token():
    page = json.loads(fixture("cryptopanic_page1.json"))
    page["next"] = f"https://evil.example/api/?auth_token={TOKEN}&page=2"
    session = FakeSession({CRYPTOPANIC_1: Doc(json.dumps(page).encode())})

    with pytest.raises(CryptoPanicError, match=r"evil\.example.*not followed") as caught:
        pages(session)

    assert session.urls() == [CRYPTOPANIC_1]
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (Doc(b'{"status":"Incomplete","info":"Token not found"}', status=401),
         rf"token was rejected \(HTTP 401\); check {TOKEN_ENV}"),
        (Doc(b"slow down", status=429), r"rate limited \(HTTP 429\)"),
        (Doc(b"<html>oops</html>", status=502), r"HTTP 502 from https://cryptopanic\.com/.*"
                                                 r"auth_token=\*\*\*&kind=news"),
        (Doc(b"<html>maintenance</html>"), r"did not answer JSON"),
        (Doc(b'{"status":"Incomplete","info":"Unknown filter"}'),
         r"unexpected answer from .*auth_token=\*\*\*.*: Unknown filter"),
        (requests.ConnectionError(f"Max retries exceeded with url: /api/v1/posts/?auth_token="
                                  f"{TOKEN}&kind=news"), r"unreachable \(ConnectionError"),
    ],
)
def test_failures_are_clear_errors_without_the_token(route, message):
    session = FakeSession({CRYPTOPANIC_1: route})

    with pytest.raises(CryptoPanicError, match=message) as caught:
        pages(session)

    shown = "".join(traceback.format_exception(caught.value))  # what a traceback would print
    assert TOKEN not in shown


def test_the_token_is_redacted_from_urllib3_and_news_log_records(caplog):
    load_token({TOKEN_ENV: TOKEN})
    caplog.set_level(logging.DEBUG)

    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s', "https", "cryptopanic.com", 443, "GET",
        f"/api/v1/posts/?auth_token={TOKEN}&kind=news", "HTTP/1.1", 200, 1234)
    logging.getLogger("news.collect").warning("fetching %s", CRYPTOPANIC_1)

    assert "auth_token=***" in caplog.text
    assert TOKEN not in caplog.text
    assert redact(f"x {TOKEN} y") == "x *** y"


def test_load_token_prefers_the_environment_over_the_dotenv_file(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"{TOKEN_ENV}=from-file-token-123\n")
    monkeypatch.delenv(TOKEN_ENV, raising=False)

    from_file = load_token(dotenv_path=dotenv)
    monkeypatch.setenv(TOKEN_ENV, "from-env-token-456")
    from_env = load_token(dotenv_path=dotenv)

    assert (from_file, from_env) == ("from-file-token-123", "from-env-token-456")
    assert load_token({}, dotenv_path=dotenv) is None
    assert load_token({TOKEN_ENV: "  "}) is None
    assert load_token(dotenv_path=tmp_path / "missing.env") == "from-env-token-456"
