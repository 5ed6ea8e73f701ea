"""`quantum news collect` and `show` through typer's CliRunner, over a fake session."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from news.cli import build_app
from news.cryptopanic import TOKEN_ENV
from news.store import NewsStore
from quantum.cli import app as quantum_app
from tests.unit.news.fakes import (
    COINDESK,
    CRYPTOPANIC_1,
    TOKEN,
    Clock,
    Doc,
    FakeSession,
    cryptopanic_routes,
    feed_routes,
)

WIDE = {"COLUMNS": "220"}


class Sessions:
    """A session factory that remembers the sessions it made."""

    def __init__(self, routes) -> None:
        self.routes, self.made = routes, []

    def __call__(self) -> FakeSession:
        self.made.append(FakeSession(self.routes))
        return self.made[-1]


def run(app, *args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


@pytest.fixture
def routes():
    return {**feed_routes(), **cryptopanic_routes()}


def test_collect_prints_a_row_per_source_and_stores_the_items(tmp_path, routes):
    sessions = Sessions(routes)
    app = build_app(sessions, Clock(), env={TOKEN_ENV: TOKEN}, dotenv_path=None)

    result = run(app, "collect", "--data", str(tmp_path),
                 "--feeds", "coindesk,cointelegraph,decrypt,theblock")

    assert result.exit_code == 0, result.output
    for source in ("coindesk", "cointelegraph", "decrypt", "theblock", "cryptopanic"):
        assert source in result.output
    assert "theblock: damaged feed" in result.output
    assert "16 new item(s) stored" in result.output
    assert len(NewsStore(tmp_path).read()) == 16
    assert sessions.made[0].closed
    assert TOKEN not in result.output


def test_a_rerun_reports_not_modified_and_nothing_new(tmp_path, routes):
    app = build_app(Sessions(routes), Clock(), env={}, dotenv_path=None)
    run(app, "collect", "--data", str(tmp_path), "--feeds", "coindesk")

    result = run(app, "collect", "--data", str(tmp_path), "--feeds", "coindesk")

    assert result.exit_code == 0, result.output
    assert "not modified" in result.output
    assert "0 new item(s) stored" in result.output


def test_without_a_token_cryptopanic_shows_as_skipped(tmp_path, routes):
    sessions = Sessions(routes)
    app = build_app(sessions, Clock(), env={}, dotenv_path=None)

    result = run(app, "collect", "--data", str(tmp_path), "--feeds", "coindesk")

    assert result.exit_code == 0, result.output
    assert f"cryptopanic: skipped: no token (set {TOKEN_ENV}" in result.output
    assert sessions.made[0].urls() == [COINDESK]


def test_the_token_can_come_from_a_dotenv_file(tmp_path, routes, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"{TOKEN_ENV}={TOKEN}\n")
    sessions = Sessions(routes)
    app = build_app(sessions, Clock(), dotenv_path=dotenv)

    result = run(app, "collect", "--data", str(tmp_path / "data"), "--feeds", "coindesk")

    assert result.exit_code == 0, result.output
    assert CRYPTOPANIC_1 in sessions.made[0].urls()


def test_no_cryptopanic_leaves_it_out_even_with_a_token(tmp_path, routes):
    sessions = Sessions(routes)
    app = build_app(sessions, Clock(), env={TOKEN_ENV: TOKEN}, dotenv_path=None)

    result = run(app, "collect", "--data", str(tmp_path / "store"), "--feeds", "coindesk",
                 "--no-cryptopanic")

    assert result.exit_code == 0, result.output
    assert "cryptopanic" not in result.output.replace(str(tmp_path), "")
    assert sessions.made[0].urls() == [COINDESK]


def test_a_failing_source_prints_the_table_then_exits_2(tmp_path, routes):
    routes[COINDESK] = Doc(b"busy", status=503)
    app = build_app(Sessions(routes), Clock(), env={}, dotenv_path=None)

    result = run(app, "collect", "--data", str(tmp_path), "--feeds", "coindesk,decrypt")

    assert result.exit_code == 2
    assert "coindesk: HTTP 503" in result.output
    assert "error: 1 source(s) failed (coindesk); the rest is stored" in result.output
    assert len(NewsStore(tmp_path).read()) == 3


def test_a_cryptopanic_failure_never_prints_the_token(tmp_path, routes):
    routes[CRYPTOPANIC_1] = Doc(b"<html>bad gateway</html>", status=502)
    app = build_app(Sessions(routes), Clock(), env={TOKEN_ENV: TOKEN}, dotenv_path=None)

    result = run(app, "collect", "--data", str(tmp_path), "--feeds", "coindesk")

    assert result.exit_code == 2
    assert "cryptopanic: HTTP 502 from" in result.output
    assert "auth_token=***" in result.output
    assert TOKEN not in result.output


def test_an_unknown_feed_is_one_error_line_and_exit_2(tmp_path, routes):
    sessions = Sessions(routes)
    app = build_app(sessions, Clock(), env={}, dotenv_path=None)

    result = run(app, "collect", "--data", str(tmp_path), "--feeds", "coindsk")

    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: unknown feed 'coindsk': give a URL or one of coindesk, cointelegraph, "
        "decrypt, theblock, bitcoinmagazine"
    ]
    assert sessions.made == []


def test_a_damaged_store_is_one_error_line_naming_the_file_and_exit_2(tmp_path, routes):
    app = build_app(Sessions(routes), Clock(), env={}, dotenv_path=None)
    run(app, "collect", "--data", str(tmp_path), "--feeds", "coindesk")
    damaged = tmp_path / "news" / "month=2026-12" / "data.parquet"
    damaged.write_bytes(b"PAR1 torn")

    collected = run(app, "collect", "--data", str(tmp_path), "--feeds", "decrypt")
    shown = run(app, "show", "--data", str(tmp_path))

    for result in (collected, shown):
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: cannot read news file {damaged}")


def test_show_lists_the_latest_headlines_newest_first(tmp_path, routes):
    app = build_app(Sessions(routes), Clock(), env={}, dotenv_path=None)
    run(app, "collect", "--data", str(tmp_path), "--feeds", "coindesk,decrypt")

    result = run(app, "show", "--data", str(tmp_path), "-n", "2")

    assert result.exit_code == 0, result.output
    assert "latest 2 of 7 headlines" in result.output
    assert "Solana DEX volume beats Ethereum for a third month" not in result.output
    lines = result.output.splitlines()
    week = next(i for i, line in enumerate(lines) if "The week ahead in crypto" in line)
    xbt = next(i for i, line in enumerate(lines) if "Why XBT futures basis widened" in line)
    assert week < xbt
    assert "2026-12-01 12:00" in result.output and "decrypt" in result.output


def test_show_filters_by_asset(tmp_path, routes):
    app = build_app(Sessions(routes), Clock(), env={}, dotenv_path=None)
    run(app, "collect", "--data", str(tmp_path), "--feeds", "coindesk")

    result = run(app, "show", "--data", str(tmp_path), "--asset", "btc")

    assert result.exit_code == 0, result.output
    assert "Bitcoin Tops $98K as Spot ETF Inflows Return" in result.output
    assert "Ether Jumps" not in result.output
    assert "latest 1 of 1 headlines" in result.output


def test_show_on_an_empty_store_says_so(tmp_path):
    result = run(build_app(), "show", "--data", str(tmp_path))

    assert result.exit_code == 0
    assert f"no news stored under {tmp_path}" in result.output


def test_news_is_registered_on_the_quantum_command():
    result = CliRunner().invoke(quantum_app, ["news", "--help"])

    assert result.exit_code == 0
    assert "collect" in result.output and "show" in result.output
