"""Parquet store for collected headlines, plus each source's collection state.

Layout (a Hive-partitioned dataset that plain pyarrow reads; it skips names starting with
``.`` or ``_``)::

    ROOT/news/month=2026-12/data.parquet     every item first seen in that month (SCHEMA)
    ROOT/news/_state/<source>.json           ETag, Last-Modified, last CryptoPanic id, ...
    ROOT/news/.lock                          one writer at a time

Why this shape:
- Identity is the content hash, and an item is stored once: ``append`` drops hashes the
  store already holds, so re-collection never rewrites ``first_seen`` (the alignment's
  "visible from" time) and the same story from two feeds is one row.
- One file per month, rewritten whole: news is small (thousands of rows a month), so a
  rewrite is cheap and the file count stays bounded however often collection runs.
- Crash safety: a month file is written under a hidden temporary name, fsynced and renamed
  over the old one, so a reader sees the old or the new file, never half of one; a killed
  writer leaves a hidden temp file that the next writer removes. State files are replaced
  the same way, and only after the items they describe are stored, so a crash between
  the two costs one refetch (deduplicated), never an item.
- Damage is reported, not repaired: a month file that does not read as parquet stops
  ``append`` (its hashes are unknown, so dedup would be wrong) with an error naming the
  file, and is never overwritten; other months stay readable through ``read``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from market.store import write_json_atomic, write_parquet_atomic
from news.schema import COLUMNS, SCHEMA, NewsRecord, as_utc, records_table

log = logging.getLogger(__name__)

_MONTH_DIR = re.compile(r"month=(\d{4}-\d{2})")
_SOURCE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
DATA_FILE = "data.parquet"


class NewsStoreError(RuntimeError):
    """The news store cannot be read or written; the message names the file and what to do."""


class StateError(NewsStoreError):
    """A source's state file is unreadable; only that source is affected."""


class NewsStore:
    """Headlines under ``root/news`` (see module doc)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.directory = self.root / "news"

    def __repr__(self) -> str:
        return f"NewsStore({str(self.root)!r})"

    def append(self, records: Sequence[NewsRecord]) -> int:
        """Store the records whose hash is new (first occurrence wins); returns how many.

        Raises NewsStoreError, writing nothing, when a stored month file is unreadable."""
        if not records:
            return 0
        with self._locked():
            seen = self.hashes()
            fresh: dict[str, list[NewsRecord]] = {}
            for record in records:
                if record.hash in seen:
                    continue
                seen.add(record.hash)
                fresh.setdefault(f"{record.first_seen:%Y-%m}", []).append(record)
            for month, rows in sorted(fresh.items()):
                self._write_month(month, records_table(rows))
        count = sum(len(rows) for rows in fresh.values())
        log.debug("stored %d new of %d items", count, len(records))
        return count

    def read(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Items with ``start <= first_seen < end`` (either bound optional; UTC if naive),
        sorted by first_seen (stable: a run's items keep their collection order).

        Only the months in range are opened, so a damaged month elsewhere does not block."""
        lo = None if start is None else _timestamp(start)
        hi = None if end is None else _timestamp(end)
        tables = []
        for month, path in self._month_files():
            month_start = pd.Timestamp(f"{month}-01", tz="UTC")
            if (hi is not None and month_start >= hi) or (
                lo is not None and month_start + pd.offsets.MonthBegin(1) <= lo
            ):
                continue
            tables.append(self._read_file(path))
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        frame = table.to_pandas()
        frame["assets"] = [list(a) for a in frame["assets"]]
        if lo is not None:
            frame = frame[frame["first_seen"] >= lo]
        if hi is not None:
            frame = frame[frame["first_seen"] < hi]
        return frame.sort_values("first_seen", kind="stable").reset_index(drop=True)

    def hashes(self) -> set[str]:
        """Every stored hash (reads one column of each month file)."""
        found: set[str] = set()
        for _, path in self._month_files():
            found.update(self._read_file(path, columns=["hash"]).column("hash").to_pylist())
        return found

    def months(self) -> list[str]:
        """Stored months as 'YYYY-MM', oldest first."""
        return [month for month, _ in self._month_files()]

    def state_path(self, source: str) -> Path:
        if not _SOURCE.fullmatch(source):
            raise ValueError(f"source name {source!r}: use lower-case letters, digits, _ . -")
        return self.directory / "_state" / f"{source}.json"

    def load_state(self, source: str) -> dict[str, Any]:
        """The source's saved state, {} before its first collection.

        Raises StateError naming the file when it is not a JSON object."""
        path = self.state_path(source)
        if not path.is_file():
            return {}
        try:
            state = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            state = exc
        if not isinstance(state, dict):
            raise StateError(
                f"state file {path} of source {source!r} is unreadable ({state}); delete it "
                "to collect that source afresh (stored items are kept and not duplicated)"
            )
        return state

    def save_state(self, source: str, state: Mapping[str, Any]) -> None:
        """Replace the source's state atomically (old or new, never half)."""
        path = self.state_path(source)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, dict(state))

    def _month_files(self) -> list[tuple[str, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for sub in self.directory.iterdir():
            match = _MONTH_DIR.fullmatch(sub.name)
            if match and (sub / DATA_FILE).is_file():
                found.append((match[1], sub / DATA_FILE))
        return sorted(found)

    def _read_file(self, path: Path, columns: list[str] | None = None) -> pa.Table:
        try:
            table = pq.read_table(path, columns=columns, schema=SCHEMA)
        except (OSError, pa.ArrowException) as exc:
            raise NewsStoreError(
                f"cannot read news file {path} ({str(exc).rstrip('.')}); it is damaged "
                "(copied or edited outside Quantum?): move it out of the store to go on; "
                "other months are untouched, and items the feeds still serve are collected "
                "again"
            ) from exc
        return table if columns else table.select(list(COLUMNS))

    def _write_month(self, month: str, new: pa.Table) -> None:
        directory = self.directory / f"month={month}"
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / DATA_FILE
        table = pa.concat_tables([self._read_file(final), new]) if final.is_file() else new
        write_parquet_atomic(table, final)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time; also clears temp files a killed writer left."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                for leftover in self.directory.glob("month=*/.*.tmp"):
                    leftover.unlink(missing_ok=True)
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _timestamp(value: Any) -> pd.Timestamp:
    if isinstance(value, datetime):
        return pd.Timestamp(as_utc(value))
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
