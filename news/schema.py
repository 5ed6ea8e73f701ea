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
