"""One headline as stored: the columns of the news parquet dataset and how a record's
identity (its content hash) is made, shared by the collectors, the encoder's cache and
the alignment.

Two times, on purpose: ``published`` is what the source claims (it can be late, early, or
missing); ``first_seen`` is when our collector first saw the item. Alignment makes a
headline visible from ``first_seen`` (never earlier), so a backfilled or back-dated item
cannot leak into bars before we could have read it."""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pyarrow as pa

COLUMNS = ("hash", "published", "first_seen", "source", "title", "summary", "url", "assets")

SCHEMA = pa.schema([
    pa.field("hash", pa.string(), nullable=False),
    pa.field("published", pa.timestamp("ms", tz="UTC"), nullable=True),
    pa.field("first_seen", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("title", pa.string(), nullable=False),
    pa.field("summary", pa.string(), nullable=False),
    pa.field("url", pa.string(), nullable=False),
    pa.field("assets", pa.list_(pa.string()), nullable=False),
])
"""``published`` is null when the source gives no usable date; ``assets`` are our asset
codes (BTC, ETH, ...) the item mentions, empty for market-wide news."""

_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def clean_text(text: str | None) -> str:
    """Plain text from a feed field: HTML tags dropped, entities decoded, Unicode
    normalised (NFKC), whitespace collapsed."""
    if not text:
        return ""
    plain = html.unescape(_TAGS.sub(" ", text))
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", plain)).strip()


def content_hash(title: str, summary: str = "") -> str:
    """The item's identity: sha256 of its cleaned, case-folded title and summary. The same
    story syndicated under two URLs is one item; a corrected title is a new one."""
    key = f"{clean_text(title).casefold()}\n{clean_text(summary).casefold()}"
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewsRecord:
    """One row of the dataset (see COLUMNS). Build it with :meth:`create`, which cleans the
    text and derives the hash, so every collector makes identities the same way."""

    hash: str
    published: datetime | None
    first_seen: datetime
    source: str
    title: str
    summary: str
    url: str
    assets: tuple[str, ...]

    @classmethod
    def create(
        cls,
        *,
        source: str,
        title: str,
        summary: str = "",
        url: str = "",
        published: datetime | None,
        first_seen: datetime,
        assets: tuple[str, ...] = (),
    ) -> NewsRecord:
        """A record from raw feed fields: HTML cleaned, times in UTC at the store's
        millisecond precision (so a record equals itself after a round trip)."""
        clean_title, clean_summary = clean_text(title), clean_text(summary)
        if not clean_title:
            raise ValueError(f"{source}: an item needs a title")
        if first_seen.tzinfo is None:
            raise ValueError("first_seen must be timezone-aware (the collector's UTC clock)")
        return cls(
            hash=content_hash(clean_title, clean_summary),
            published=None if published is None else _to_ms(as_utc(published)),
            first_seen=_to_ms(as_utc(first_seen)),
            source=source,
            title=clean_title,
            summary=clean_summary,
            url=(url or "").strip(),
            assets=tuple(assets),
        )


def records_table(records: list[NewsRecord]) -> pa.Table:
    """Records as an arrow table of SCHEMA (assets as lists), in the given order."""
    rows = [
        {name: list(r.assets) if name == "assets" else getattr(r, name) for name in COLUMNS}
        for r in records
    ]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is taken to be UTC already (what feeds that omit the
    zone almost always mean, and the only reading that needs no guess about the server)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_time(text: str | None) -> datetime | None:
    """A source's date string as UTC, or None when missing or unparseable.

    RFC 822 (RSS ``pubDate``, also with zone names such as EST or GMT) and ISO 8601
    (Atom, JSON APIs, ``Z`` or ``+02:00``) are read; a time without a zone is UTC."""
    if not text or not text.strip():
        return None
    text = text.strip()
    try:
        return as_utc(parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError):
        pass
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _to_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
