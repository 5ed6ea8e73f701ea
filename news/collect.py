"""One collection run: every feed, then CryptoPanic, into the news store.

Usage (what ``quantum news collect`` does)::

    result = collect(NewsStore("data"), DEFAULT_FEEDS, requests.Session(),
                     now=lambda: datetime.now(UTC), cryptopanic_token=load_token())

How it stays correct:
- ``first_seen`` is read from ``now`` right after each response arrives, never before, so
  no item is stamped earlier than the moment we held it (the alignment's no-look-ahead
  rule); a stored item keeps its first stamp forever (the store drops known hashes).
- Resumable: each source's items are stored before its state (ETag, last id) is saved,
  and CryptoPanic pages are stored one by one, so a crash at any point loses nothing
  stored and the rerun refetches at most what was in flight (duplicates are dropped).
- One failing source (network, HTTP error, damaged feed, unreadable state file) is
  reported in its row and the others go on; a damaged store stops the run (NewsStoreError).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from news.assets import DEFAULT_ASSETS, AssetMap
from news.cryptopanic import (
    SOURCE,
    TOKEN_ENV,
    CryptoPanicConfig,
    CryptoPanicError,
    iter_pages,
    redact,
)
from news.feeds import Feed, FeedError, HttpCache, fetch_feed, parse_feed
from news.store import NewsStore, StateError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class SourceResult:
    """What one source gave in one run."""

    source: str
    fetched: int = 0
    """Items read from the source's responses (entries left out not counted)."""
    new: int = 0
    """Items stored for the first time."""
    duplicates: int = 0
    """Items already stored (from an earlier run or another source) or repeated."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Entries left out, by reason (e.g. 'no title')."""
    not_modified: bool = False
    """The server answered 304: nothing changed since the last run."""
    error: str | None = None
    """Why the source failed this run (it is tried again next run)."""
    note: str | None = None
    """Something to know that is not a failure (a partly damaged feed, a skipped source)."""


@dataclass(frozen=True)
class CollectResult:
    """One row per source, in collection order."""

    sources: tuple[SourceResult, ...]

    @property
    def new(self) -> int:
        return sum(s.new for s in self.sources)

    @property
    def errors(self) -> tuple[SourceResult, ...]:
        return tuple(s for s in self.sources if s.error)


def collect(
    store: NewsStore,
    feeds: Sequence[Feed],
    session: requests.Session,
    now: Clock,
    cryptopanic_token: str | None = None,
    *,
    use_cryptopanic: bool = True,
    assets: AssetMap = DEFAULT_ASSETS,
    cryptopanic: CryptoPanicConfig | None = None,
    timeout_s: float = 20.0,
) -> CollectResult:
    """Collect ``feeds`` and (with ``use_cryptopanic``) CryptoPanic into ``store``.

    ``now`` is the clock (UTC, timezone-aware) stamping ``first_seen``; without a token
    CryptoPanic is skipped with a note. Raises NewsStoreError if the store is damaged."""
    clock = _checked(now)
    results = [_collect_feed(store, feed, session, clock, assets, timeout_s) for feed in feeds]
    if use_cryptopanic:
        if cryptopanic_token:
            config = cryptopanic or CryptoPanicConfig()
            results.append(
                _collect_cryptopanic(store, session, clock, cryptopanic_token, assets, config)
            )
        else:
            results.append(SourceResult(SOURCE, note=f"skipped: no token (set {TOKEN_ENV} "
                                                     "in the environment or .env)"))
    return CollectResult(tuple(results))


def _collect_feed(
    store: NewsStore, feed: Feed, session: requests.Session, now: Clock, assets: AssetMap,
    timeout_s: float,
) -> SourceResult:
    try:
        cache = HttpCache.from_state(store.load_state(feed.name))
        response = fetch_feed(session, feed, cache, timeout_s)
        if response.not_modified:
            log.info("%s: not modified", feed.name)
            return SourceResult(feed.name, not_modified=True)
        parsed = parse_feed(response.content, feed, now(), assets, response.content_type)
    except (FeedError, StateError) as exc:
        log.info("%s", exc)  # reported in the result; a warning would print it twice
        return SourceResult(feed.name, error=str(exc))
    new = store.append(parsed.records)
    store.save_state(feed.name, {**response.cache.to_state(), "checked_at": _iso(now())})
    fetched = len(parsed.records)
    log.info("%s: %d items, %d new", feed.name, fetched, new)
    return SourceResult(feed.name, fetched, new, fetched - new, parsed.skipped,
                        note=parsed.warning)


def _collect_cryptopanic(
    store: NewsStore, session: requests.Session, now: Clock, token: str, assets: AssetMap,
    config: CryptoPanicConfig,
) -> SourceResult:
    fetched = new = 0
    skipped: Counter[str] = Counter()
    try:
        state = store.load_state(SOURCE)
        since_id = state.get("last_id") if isinstance(state.get("last_id"), int) else None
        newest_id, newest_time = since_id, state.get("last_published")
        pages = iter_pages(session, token, since_id=since_id, assets=assets, now=now,
                           config=config)
        for page in pages:
            new += store.append(page.records)
            fetched += len(page.records)
            skipped.update(page.skipped)
            newest_id = _newest(newest_id, page.ids)
            newest_time = _newest(newest_time if isinstance(newest_time, str) else None,
                                  [_iso(r.published) for r in page.records if r.published])
    except (CryptoPanicError, StateError) as exc:
        message = redact(str(exc))
        log.info("%s", message)
        return SourceResult(SOURCE, fetched, new, fetched - new, dict(skipped), error=message)
    store.save_state(SOURCE, {"last_id": newest_id, "last_published": newest_time,
                              "checked_at": _iso(now())})
    log.info("%s: %d items, %d new", SOURCE, fetched, new)
    return SourceResult(SOURCE, fetched, new, fetched - new, dict(skipped))


def _checked(now: Clock) -> Clock:
    """The clock, refusing naive times: a local-time stamp would shift every item."""

    def read() -> datetime:
        moment = now()
        if moment.tzinfo is None:
            raise ValueError("the collector's clock must return timezone-aware times (UTC)")
        return moment.astimezone(UTC)

    return read


def _newest(current: Any, values: Sequence[Any]) -> Any:
    """The largest of ``current`` and ``values`` (ids, or ISO times in UTC, which sort as
    text), None when there is none."""
    return max([v for v in (current, *values) if v is not None], default=None)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")
