"""CryptoPanic's posts API: an aggregator of crypto news with its own currency tags.

Usage: ``for page in iter_pages(session, token, since_id=..., assets=..., now=...)``;
each page's records can be stored before the next page is asked for, so an interrupted
run keeps what it fetched (the caller advances ``since_id`` only after a complete run).

The API pages newest-first through a ``next`` URL. A run stops at the first page that
reaches the newest id seen before (``since_id``), or after ``max_pages`` pages, so a
routine run costs one request; items beyond the page cap after a long pause are not
back-filled (the free plan's history is short anyway).

The token travels in the query string (``auth_token=``), the only way the API takes it,
so every URL is a secret: errors and logs show it as ``***`` (a logging filter on
urllib3's and Quantum's news loggers), exceptions are raised without the requests
exception chained (its message holds the URL), and a ``next`` URL on another host is
refused rather than sent the token.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlencode, urlsplit

import requests
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field

from news.assets import AssetMap
from news.feeds import NO_TITLE, USER_AGENT
from news.schema import NewsRecord, clean_text, parse_time

API_URL: Final = "https://cryptopanic.com/api/v1/posts/"
TOKEN_ENV: Final = "QUANTUM_CRYPTOPANIC_TOKEN"
DEFAULT_DOTENV: Final = Path(".env")
SOURCE: Final = "cryptopanic"
"""The state file's name; records are stored as ``cryptopanic/<outlet domain>``."""

log = logging.getLogger(__name__)


class CryptoPanicError(RuntimeError):
    """CryptoPanic could not be collected this time (message free of the token)."""


class CryptoPanicConfig(BaseModel):
    """Which posts to ask for, and how far to page."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(API_URL, description="Posts endpoint (v1; a paid plan may use another).")
    kind: Literal["news", "media", "all"] = Field(
        "news", description="Post kind: news articles (not videos or social media posts)."
    )
    public: bool = Field(True, description="Public feed (not the token owner's UI filters).")
    max_pages: int = Field(5, ge=1, description="Most pages one run requests.")
    timeout_s: float = Field(20.0, gt=0, description="Seconds to wait for each response.")


class _TokenFilter(logging.Filter):
    """Replaces registered tokens with '***' in every record of the loggers it guards."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()

    def redact(self, text: str) -> str:
        for token in sorted(self.tokens, key=len, reverse=True):
            text = text.replace(token, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.tokens:
            message = record.getMessage()
            redacted = self.redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


REDACTOR: Final = _TokenFilter()
for _logger in ("urllib3.connectionpool", "requests", __name__, "news.collect", "news.cli"):
    logging.getLogger(_logger).addFilter(REDACTOR)


def redact(text: str) -> str:
    """``text`` with every token used so far replaced by '***'."""
    return REDACTOR.redact(text)


def load_token(
    env: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike[str] | None = DEFAULT_DOTENV,
) -> str | None:
    """The API token from ``env`` (default: the environment, over the .env file, which
    never overrides it); None when neither sets it."""
    if env is None:
        from_file: dict[str, str] = {}
        if dotenv_path is not None and Path(dotenv_path).is_file():
            from_file = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
        env = {**from_file, **os.environ}
    token = (env.get(TOKEN_ENV) or "").strip()
    if token:
        REDACTOR.tokens.add(token)
    return token or None


@dataclass(frozen=True)
class PostsPage:
    """One page of posts as records, the posts left out (reason -> count) and the ids seen."""

    records: tuple[NewsRecord, ...]
    skipped: dict[str, int] = field(default_factory=dict)
    ids: tuple[int, ...] = ()


def first_page_url(token: str, config: CryptoPanicConfig) -> str:
    query = {"auth_token": token, "kind": config.kind}
    if config.public:
        query["public"] = "true"
    return f"{config.url}?{urlencode(query)}"


def iter_pages(
    session: requests.Session,
    token: str,
    *,
    since_id: int | None,
    assets: AssetMap,
    now: Callable[[], datetime],
    config: CryptoPanicConfig,
) -> Iterator[PostsPage]:
    """Pages newest-first until one reaches ``since_id``, there is no next page, or
    ``max_pages`` were read. Each page's records are stamped with ``now()`` read after
    its response arrived. Raises CryptoPanicError (token redacted)."""
    REDACTOR.tokens.add(token)
    home = urlsplit(config.url)
    url: str | None = first_page_url(token, config)
    for _ in range(config.max_pages):
        if url is None:
            return
        payload = _get_json(session, url, config.timeout_s)
        page = _page(payload, now(), assets)
        log.debug("cryptopanic: %d posts on a page", len(page.ids))
        yield page
        if since_id is not None and any(i <= since_id for i in page.ids):
            return
        url = payload.get("next") or None
        if url is not None:
            target = urlsplit(url)
            if (target.scheme, target.netloc) != (home.scheme, home.netloc):
                raise CryptoPanicError(
                    f"cryptopanic: the next page is on {target.netloc!r}, not "
                    f"{home.netloc!r}; not followed (the token would be sent there)"
                )


def post_record(post: Mapping[str, Any], first_seen: datetime, assets: AssetMap
                ) -> NewsRecord | str:
    """A post as a record, or the reason it was left out.

    Assets: CryptoPanic's own currency tags that our map knows, since they come from its
    editors; when none of them is ours (or the post has none), the text detector on the
    title, as for feed items (a DOGE-tagged post that names Bitcoin is still about BTC)."""
    title = clean_text(post.get("title"))
    if not title:
        return NO_TITLE
    metadata = post.get("metadata")
    summary = clean_text(metadata.get("description")) if isinstance(metadata, dict) else ""
    currencies = post.get("currencies") or []
    codes = [c.get("code", "") for c in currencies if isinstance(c, dict)]
    tagged = assets.known(codes) or assets.detect(title, summary)
    outlet = post.get("source") if isinstance(post.get("source"), dict) else {}
    domain = outlet.get("domain") or post.get("domain") or "unknown"
    return NewsRecord.create(
        source=f"{SOURCE}/{domain}", title=title, summary=summary, url=post.get("url") or "",
        published=parse_time(post.get("published_at")), first_seen=first_seen, assets=tagged,
    )


def _page(payload: dict[str, Any], first_seen: datetime, assets: AssetMap) -> PostsPage:
    records, skipped, ids = [], Counter(), []
    for post in payload["results"]:
        if not isinstance(post, dict):
            skipped["not an object"] += 1
            continue
        if isinstance(post.get("id"), int):
            ids.append(post["id"])
        made = post_record(post, first_seen, assets)
        if isinstance(made, str):
            skipped[made] += 1
        else:
            records.append(made)
    return PostsPage(tuple(records), dict(skipped), tuple(ids))


def _get_json(session: requests.Session, url: str, timeout_s: float) -> dict[str, Any]:
    """One page as JSON; every failure a CryptoPanicError without the token."""
    shown = redact(url)
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    try:
        response = session.get(url, headers=headers, timeout=timeout_s)
    except requests.RequestException as exc:
        message = f"cryptopanic: {shown} unreachable ({type(exc).__name__}: {exc})"
        raise CryptoPanicError(redact(message)) from None
    status = response.status_code
    if status in (401, 403):
        raise CryptoPanicError(
            f"cryptopanic: the token was rejected (HTTP {status}); check {TOKEN_ENV}"
        )
    if status == 429:
        raise CryptoPanicError("cryptopanic: rate limited (HTTP 429); run again later")
    if not 200 <= status < 300:
        raise CryptoPanicError(f"cryptopanic: HTTP {status} from {shown}")
    try:
        payload = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise CryptoPanicError(f"cryptopanic: {shown} did not answer JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        info = payload.get("info") or payload.get("status") if isinstance(payload, dict) else None
        detail = f": {info}" if info else ""
        raise CryptoPanicError(redact(f"cryptopanic: unexpected answer from {shown}{detail}"))
    return payload
