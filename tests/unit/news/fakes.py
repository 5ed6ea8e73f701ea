"""A fake ``requests.Session`` that answers recorded documents, like a real server would:
ETag / Last-Modified validators, 304 to a matching conditional GET, 404 for unknown URLs.
Every request is recorded (url and headers) for the tests to inspect."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from requests.structures import CaseInsensitiveDict

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "cp-9f3c2e7d41a8b6051e2d"
"""A realistic-looking token: a short one would be 'redacted' inside unrelated words."""

COINDESK = "https://www.coindesk.com/arc/outboundfeeds/rss/"
COINTELEGRAPH = "https://cointelegraph.com/rss"
DECRYPT = "https://decrypt.co/feed"
THEBLOCK = "https://www.theblock.co/rss.xml"
BITCOINMAGAZINE = "https://bitcoinmagazine.com/.rss/full/"
CRYPTOPANIC_1 = (
    f"https://cryptopanic.com/api/v1/posts/?auth_token={TOKEN}&kind=news&public=true"
)
CRYPTOPANIC_2 = f"{CRYPTOPANIC_1}&page=2"


def fixture(name: str) -> bytes:
    """A recorded document; CryptoPanic's ``__TOKEN__`` placeholder becomes TOKEN, as the
    real API echoes the caller's token in its ``next`` links."""
    return (FIXTURES / name).read_bytes().replace(b"__TOKEN__", TOKEN.encode())


@dataclass
class Doc:
    """One recorded answer."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> CaseInsensitiveDict:
        values = {"Content-Type": self.content_type}
        if self.etag:
            values["ETag"] = self.etag
        if self.last_modified:
            values["Last-Modified"] = self.last_modified
        return CaseInsensitiveDict(values)


@dataclass
class FakeResponse:
    status_code: int
    content: bytes
    headers: CaseInsensitiveDict
    url: str
    reason: str = ""


@dataclass
class FakeSession:
    """Serves ``routes`` (url -> Doc, or an exception to raise); records each request."""

    routes: dict[str, Doc | BaseException]
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    closed: bool = False

    def get(self, url: str, headers: dict[str, str] | None = None, timeout: float | None = None
            ) -> FakeResponse:
        assert timeout is not None, "every request needs a timeout"
        sent = CaseInsensitiveDict(headers or {})
        self.calls.append((url, dict(sent)))
        route = self.routes.get(url)
        if route is None:
            return FakeResponse(404, b"not found", CaseInsensitiveDict(), url, "Not Found")
        if isinstance(route, BaseException):
            raise route
        fresh = route.headers()
        if (route.etag and sent.get("If-None-Match") == route.etag) or (
            route.last_modified and sent.get("If-Modified-Since") == route.last_modified
        ):
            return FakeResponse(304, b"", fresh, url, "Not Modified")
        return FakeResponse(route.status, route.body, fresh, url)

    def urls(self) -> list[str]:
        return [url for url, _ in self.calls]

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def feed_routes() -> dict[str, Doc | BaseException]:
    """The five default feeds as recorded: CoinDesk and Decrypt send an ETag, Cointelegraph
    only Last-Modified, The Block a truncated document, Bitcoin Magazine a broken one."""
    return {
        COINDESK: Doc(fixture("coindesk.xml"), etag='W/"cd-1"'),
        COINTELEGRAPH: Doc(fixture("cointelegraph.xml"),
                           last_modified="Tue, 01 Dec 2026 10:01:09 GMT"),
        DECRYPT: Doc(fixture("decrypt_atom.xml"), content_type="application/atom+xml",
                     etag='"dc-7"'),
        THEBLOCK: Doc(fixture("theblock_truncated.xml")),
        BITCOINMAGAZINE: Doc(fixture("bitcoinmagazine_broken.xml")),
    }


def cryptopanic_routes() -> dict[str, Doc | BaseException]:
    json_type = "application/json"
    return {
        CRYPTOPANIC_1: Doc(fixture("cryptopanic_page1.json"), content_type=json_type),
        CRYPTOPANIC_2: Doc(fixture("cryptopanic_page2.json"), content_type=json_type),
    }


class Clock:
    """A collector clock: starts at ``start`` and moves ``step`` on every reading."""

    def __init__(self, start: datetime = datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
                 step: timedelta = timedelta(seconds=1)) -> None:
        self.now, self.step, self.readings = start, step, []

    def __call__(self) -> datetime:
        reading = self.now
        self.readings.append(reading)
        self.now += self.step
        return reading
