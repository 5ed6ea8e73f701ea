"""RSS/Atom feeds: which ones, how to fetch them politely, and how entries become records.

Fetching is a conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the last
response's ETag / Last-Modified): an unchanged feed answers 304 with no body, which saves
the publisher's bandwidth and tells us there is nothing new. The ``requests.Session`` is
passed in, so tests answer with recorded documents and callers control proxies/retries.

Parsing is feedparser's (it copes with RSS 0.9x-2.0, RSS 1.0, Atom, CDATA, entities and
most real-world damage). A feed that parses only partly (feedparser's ``bozo``) keeps the
entries read before the damage; one that yields nothing is an error for that feed only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import feedparser
import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator

from news.assets import AssetMap
from news.schema import NewsRecord, clean_text, parse_time

USER_AGENT: Final = f"quantum-news/0.1 (feedparser {feedparser.__version__})"
"""Some publishers' CDNs reject requests' default user agent; a descriptive one is polite."""
_ACCEPT: Final = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"
NO_TITLE: Final = "no title"
_BENIGN: Final = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)
"""What feedparser flags that is not damage: a feed served as text/html or text/plain
(common server misconfiguration) or with a charset header that the document overrides."""


class FeedError(RuntimeError):
    """One feed could not be collected this time; the others go on."""


class Feed(BaseModel):
    """One RSS or Atom feed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="Short id: the records' `source` and the state file's name.",
    )
    url: str = Field(description="The feed's http(s) address.")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"feed url {value!r} must be an http(s) address")
        return value


DEFAULT_FEEDS: Final = (
    Feed(name="coindesk", url="https://www.coindesk.com/arc/outboundfeeds/rss/"),
    Feed(name="cointelegraph", url="https://cointelegraph.com/rss"),
    Feed(name="decrypt", url="https://decrypt.co/feed"),
    Feed(name="theblock", url="https://www.theblock.co/rss.xml"),
    Feed(name="bitcoinmagazine", url="https://bitcoinmagazine.com/.rss/full/"),
)
"""Major English-language crypto newsrooms with public feeds."""


def select_feeds(spec: str | None, known: Sequence[Feed] = DEFAULT_FEEDS) -> tuple[Feed, ...]:
    """Feeds named in a comma list of known names or URLs (``None``: all known feeds).

    A URL that is not a known feed gets a name made from its host and path."""
    if spec is None:
        return tuple(known)
    by_name = {f.name: f for f in known}
    by_url = {f.url: f for f in known}
    chosen: dict[str, Feed] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item in by_name or item in by_url:
            feed = by_name.get(item) or by_url[item]
        elif "://" in item:
            feed = Feed(name=_name_for(item), url=item)
        else:
            raise ValueError(
                f"unknown feed {item!r}: give a URL or one of {', '.join(by_name)}"
            )
        chosen[feed.name] = feed
    if not chosen:
        raise ValueError("no feeds given: a comma list of feed names or URLs")
    return tuple(chosen.values())


def _name_for(url: str) -> str:
    parts = urlsplit(url)
    text = f"{parts.netloc.lower().removeprefix('www.')}{parts.path.lower()}"
    return re.sub(r"[^a-z0-9.]+", "-", text).strip("-.") or "feed"


@dataclass(frozen=True)
class HttpCache:
    """What the last 200 response said about the feed, for the next conditional GET."""

    url: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HttpCache:
        values = {k: state.get(k) for k in ("url", "etag", "last_modified")}
        return cls(**{k: v if isinstance(v, str) else None for k, v in values.items()})

    def to_state(self) -> dict[str, str | None]:
        return {"url": self.url, "etag": self.etag, "last_modified": self.last_modified}

    def headers_for(self, url: str) -> dict[str, str]:
        """Conditional-request headers, only when they describe this very URL."""
        if url != self.url:
            return {}
        headers = {"If-None-Match": self.etag, "If-Modified-Since": self.last_modified}
        return {k: v for k, v in headers.items() if v}


@dataclass(frozen=True)
class FeedResponse:
    """A fetched feed: its body, or ``not_modified`` (HTTP 304, nothing new)."""

    cache: HttpCache
    content: bytes = b""
    content_type: str | None = None
    not_modified: bool = False


@dataclass(frozen=True)
class ParsedFeed:
    """Records read from a feed document, entries left out (reason -> count), and a note
    when the document was damaged but partly usable."""

    records: tuple[NewsRecord, ...]
    skipped: dict[str, int] = field(default_factory=dict)
    warning: str | None = None


def fetch_feed(
    session: requests.Session, feed: Feed, cache: HttpCache, timeout_s: float = 20.0
) -> FeedResponse:
    """GET the feed, conditionally when ``cache`` holds validators for its URL.

    Raises FeedError for a network failure or an HTTP error status."""
    headers = {"User-Agent": USER_AGENT, "Accept": _ACCEPT, **cache.headers_for(feed.url)}
    try:
        response = session.get(feed.url, headers=headers, timeout=timeout_s)
    except requests.RequestException as exc:
        raise FeedError(
            f"{feed.name}: {feed.url} unreachable ({type(exc).__name__}: {exc}); "
            "the next run tries again"
        ) from exc
    status = response.status_code
    if status == 304:
        return FeedResponse(cache=cache, not_modified=True)
    if not 200 <= status < 300:
        reason = getattr(response, "reason", "") or ""
        raise FeedError(f"{feed.name}: HTTP {' '.join(filter(None, (str(status), reason)))} "
                        f"from {feed.url}")
    fresh = HttpCache(
        url=feed.url,
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
    )
    return FeedResponse(
        cache=fresh, content=response.content, content_type=response.headers.get("Content-Type")
    )


def parse_feed(
    content: bytes,
    feed: Feed,
    first_seen: datetime,
    assets: AssetMap,
    content_type: str | None = None,
) -> ParsedFeed:
    """Records from a feed document, all stamped ``first_seen``.

    Raises FeedError when the document yields no entries because it is damaged or is not
    a feed at all (an HTML error page, say); a valid feed with no entries is not an error."""
    headers = {"content-location": feed.url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(content, response_headers=headers)
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if isinstance(problem, _BENIGN):
        problem = None
    if not parsed.entries:
        if problem is not None:
            raise FeedError(f"{feed.name}: damaged feed, no entry readable ({_describe(problem)})")
        if not parsed.get("version"):
            kind = content_type or "no content type"
            raise FeedError(f"{feed.name}: {feed.url} did not return an RSS/Atom feed ({kind})")
    records, skipped = [], Counter()
    for entry in parsed.entries:
        title = clean_text(entry.get("title"))
        if not title:
            skipped[NO_TITLE] += 1
            continue
        summary = clean_text(entry.get("summary"))
        records.append(NewsRecord.create(
            source=feed.name, title=title, summary=summary, url=entry.get("link") or "",
            published=entry_time(entry), first_seen=first_seen,
            assets=assets.detect(title, summary),
        ))
    warning = None
    if problem is not None:
        warning = (
            f"damaged feed ({_describe(problem)}); kept the {len(parsed.entries)} "
            "entries read before the damage"
        )
    return ParsedFeed(tuple(records), dict(skipped), warning)


def entry_time(entry: dict[str, Any]) -> datetime | None:
    """The entry's claimed time in UTC: ``published``, else ``updated`` (Atom feeds often
    carry only that); None when neither is present or readable. Read with ``dict.get``:
    feedparser's own ``get`` maps a missing key onto the other one, with a warning."""
    for key in ("published", "updated"):
        moment = parse_time(dict.get(entry, key))
        if moment is not None:
            return moment
        struct = dict.get(entry, f"{key}_parsed")
        if struct is not None:
            return datetime(*struct[:6], tzinfo=UTC)
    return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
