"""Parquet store for market series: append-only, crash-safe, readable by plain pyarrow.

Layout (one Hive-partitioned dataset per kind; symbols are URI-encoded, which
pyarrow's Hive partitioning decodes)::

    ROOT/ohlcv/exchange=binanceusdm/symbol=BTC%2FUSDT%3AUSDT/timeframe=1m/00000003-part-<first>-<last>.parquet
    ROOT/mark/exchange=.../symbol=.../timeframe=1m/...
    ROOT/funding/exchange=.../symbol=.../...

Each file holds one contiguous chunk of one series (schema: ``market.schema.arrow_schema``;
``timestamp`` is ``timestamp[ns, UTC]``, values float64) and is named
``<generation>-<part|base>-<first_ns>-<last_ns>.parquet``.

Why this shape:
- Crash safety. A file is written under a hidden temporary name, fsynced, then
  atomically renamed, so a reader never sees a half-written file; a killed writer
  leaves at most a hidden temp file, removed by the next writer.
- Append without rewriting. Incremental collection adds a new ``part`` file with
  the next generation number; a year of 1m bars is never rewritten to add a page.
- Replace and compact without a window of mixed data. A ``base`` file supersedes
  every file of a lower generation. It is written first and the superseded files
  are deleted after; if the process dies in between, readers already ignore them.
- One writer per series at a time, enforced with an exclusive ``flock``.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from market.schema import TIMESTAMP, Kind, arrow_schema, columns_of, conform, empty_frame
from market.validate import DataValidationError, validate_series

_FILE = re.compile(r"^(?P<gen>\d{8})-(?P<role>part|base)-(?P<first>\d+)-(?P<last>\d+)\.parquet$")


@dataclass(frozen=True)
class SeriesKey:
    """Identity of one stored series. Funding series have no timeframe (they are events)."""

    kind: Kind
    exchange: str
    symbol: str
    timeframe: str | None

    def __post_init__(self) -> None:
        if (self.kind is Kind.FUNDING) != (self.timeframe is None):
            raise ValueError("funding series take no timeframe; bar series need one")
        if not self.exchange or "/" in self.exchange or "=" in self.exchange:
            raise ValueError(f"invalid exchange name {self.exchange!r}")

    @classmethod
    def bars(cls, exchange: str, symbol: str, timeframe: str, kind: Kind = Kind.OHLCV) -> SeriesKey:
        return cls(Kind(kind), exchange, symbol, timeframe)

    @classmethod
    def funding(cls, exchange: str, symbol: str) -> SeriesKey:
        return cls(Kind.FUNDING, exchange, symbol, None)

    @property
    def partition(self) -> Path:
        """Directory of this series relative to the store root."""
        path = (
            Path(self.kind.value)
            / f"exchange={self.exchange}"
            / f"symbol={quote(self.symbol, safe='')}"
        )
        return path / f"timeframe={self.timeframe}" if self.timeframe else path

    def __str__(self) -> str:
        tf = f" {self.timeframe}" if self.timeframe else ""
        return f"{self.kind.value} {self.exchange} {self.symbol}{tf}"


@dataclass(frozen=True)
class _File:
    path: Path
    gen: int
    base: bool
    first: int
    last: int


@dataclass(frozen=True)
class SeriesInfo:
    """Summary of one stored series, read from file names and parquet footers only."""

    key: SeriesKey
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    files: int


class ParquetStore:
    """Reads and writes market series under one root directory (see module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def append(self, key: SeriesKey, frame: pd.DataFrame, source: str = "") -> int:
        """Append the rows of `frame` that are newer than the stored end; return how many.

        Rows at or before the last stored timestamp are skipped, so re-sending an
        overlapping page after a crash is harmless (idempotent resume).
        """
        frame = conform(frame, key.kind)
        validate_series(frame, key.kind, str(key), key.timeframe)
        with self._locked(key):
            last = self._last_ns(key)
            if last is not None:
                frame = frame[frame.index.asi8 > last]
            if frame.empty:
                return 0
            self._write(key, frame, base=False, source=source)
        return len(frame)

    def replace(self, key: SeriesKey, frame: pd.DataFrame, source: str = "") -> int:
        """Make `frame` the whole series, superseding what was stored (atomically)."""
        frame = conform(frame, key.kind)
        validate_series(frame, key.kind, str(key), key.timeframe)
        with self._locked(key):
            self._write(key, frame, base=True, source=source)
            self._delete_superseded(key)
        return len(frame)

    def compact(self, key: SeriesKey) -> int:
        """Merge a series' files into one; returns the number of files removed."""
        with self._locked(key):
            files = self._live_files(key)
            if len(files) <= 1:
                return 0
            self._write(key, self._read_files(key, files), base=True, source="compact")
            return self._delete_superseded(key)

    def read(
        self, key: SeriesKey, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        """The stored series in [start, end), validated; empty if nothing is stored."""
        files = self._live_files(key)
        lo = None if start is None else start.value
        hi = None if end is None else end.value
        files = [f for f in files if (lo is None or f.last >= lo) and (hi is None or f.first < hi)]
        frame = self._read_files(key, files)
        if lo is not None:
            frame = frame[frame.index.asi8 >= lo]
        if hi is not None:
            frame = frame[frame.index.asi8 < hi]
        return frame

    def last_timestamp(self, key: SeriesKey) -> pd.Timestamp | None:
        """Open time of the last stored row (from file names, no data read)."""
        last = self._last_ns(key)
        return None if last is None else pd.Timestamp(last, tz="UTC")

    def info(self, key: SeriesKey) -> SeriesInfo:
        files = self._live_files(key)
        rows = sum(pq.ParquetFile(f.path).metadata.num_rows for f in files)
        first = pd.Timestamp(files[0].first, tz="UTC") if files else None
        last = pd.Timestamp(files[-1].last, tz="UTC") if files else None
        return SeriesInfo(key, rows, first, last, len(files))

    def series(self) -> list[SeriesKey]:
        """Every series stored under the root, sorted."""
        keys = []
        for kind in Kind:
            for part_dir in sorted((self.root / kind.value).glob("exchange=*/symbol=*")):
                exchange = part_dir.parent.name.removeprefix("exchange=")
                symbol = unquote(part_dir.name.removeprefix("symbol="))
                if kind is Kind.FUNDING:
                    keys.append(SeriesKey.funding(exchange, symbol))
                    continue
                for tf_dir in sorted(part_dir.glob("timeframe=*")):
                    keys.append(
                        SeriesKey.bars(
                            exchange, symbol, tf_dir.name.removeprefix("timeframe="), kind
                        )
                    )
        return [k for k in keys if self._live_files(k)]

    def exchanges(self) -> list[str]:
        """Exchanges with stored bars (OHLCV, any symbol or timeframe), sorted."""
        return sorted({k.exchange for k in self.series() if k.kind is Kind.OHLCV})

    def symbols(self, exchange: str, timeframe: str | None = None) -> list[str]:
        """Symbols with stored bars on ``exchange`` (of ``timeframe`` if given), sorted."""
        return sorted(
            {
                k.symbol
                for k in self.series()
                if k.kind is Kind.OHLCV
                and k.exchange == exchange
                and (timeframe is None or k.timeframe == timeframe)
            }
        )

    def _files(self, key: SeriesKey) -> list[_File]:
        directory = self.root / key.partition
        if not directory.is_dir():
            return []
        files = []
        for path in directory.iterdir():
            m = _FILE.match(path.name)
            if m:
                files.append(
                    _File(path, int(m["gen"]), m["role"] == "base", int(m["first"]), int(m["last"]))
                )
        return files

    def _live_files(self, key: SeriesKey) -> list[_File]:
        """Files not superseded by a newer base, sorted by time; overlaps are corruption."""
        files = self._files(key)
        bases = [f.gen for f in files if f.base]
        floor = max(bases, default=-1)
        live = sorted((f for f in files if f.gen >= floor), key=lambda f: f.first)
        for a, b in itertools.pairwise(live):
            if b.first <= a.last:
                raise DataValidationError(
                    f"{key}: stored files overlap ({a.path.name}, {b.path.name}); "
                    "the store was modified outside Quantum — remove one of them"
                )
        return live

    def _last_ns(self, key: SeriesKey) -> int | None:
        live = self._live_files(key)
        return live[-1].last if live else None

    def _read_files(self, key: SeriesKey, files: list[_File]) -> pd.DataFrame:
        if not files:
            return empty_frame(key.kind)
        tables = []
        for f in files:
            try:
                tables.append(pq.read_table(f.path, schema=arrow_schema(key.kind)))
            except (OSError, pa.ArrowException) as exc:
                raise DataValidationError(f"{key}: cannot read {f.path}: {exc}") from exc
        frame = pa.concat_tables(tables).to_pandas().set_index(TIMESTAMP)
        frame = frame[list(columns_of(key.kind))]
        validate_series(frame, key.kind, str(key), key.timeframe)
        return frame

    def _write(self, key: SeriesKey, frame: pd.DataFrame, base: bool, source: str) -> Path:
        directory = self.root / key.partition
        directory.mkdir(parents=True, exist_ok=True)
        gen = max((f.gen for f in self._files(key)), default=0) + 1
        stamps = frame.index.asi8
        role = "base" if base else "part"
        final = directory / f"{gen:08d}-{role}-{stamps[0]}-{stamps[-1]}.parquet"
        schema = arrow_schema(key.kind).with_metadata(
            {"quantum.series": str(key), "quantum.source": source}
        )
        table = pa.Table.from_pandas(frame.reset_index(), schema=schema, preserve_index=False)
        write_parquet_atomic(table, final)
        return final

    def _delete_superseded(self, key: SeriesKey) -> int:
        files = self._files(key)
        floor = max((f.gen for f in files if f.base), default=-1)
        stale = [f for f in files if f.gen < floor]
        for f in stale:
            f.path.unlink(missing_ok=True)
        fsync_dir(self.root / key.partition)
        return len(stale)

    def _locked(self, key: SeriesKey):
        """Exclusive lock per series (:func:`locked_dir`)."""
        return locked_dir(self.root / key.partition)


@contextmanager
def locked_dir(directory: Path) -> Iterator[None]:
    """One writer in ``directory`` at a time (an flock on its ``.lock``); also clears the
    hidden temp files a killed writer left, which no reader ever opens."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for leftover in directory.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fsync_dir(directory: Path) -> None:
    """Persist a rename: without it a power loss can forget the new directory entry."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet_atomic(table: pa.Table, final: Path) -> None:
    """Write ``table`` to ``final`` so that a reader sees the old file or the whole new
    one: a hidden temp file beside it, fsynced, renamed over it, the rename fsynced."""
    tmp = final.parent / f".{uuid.uuid4().hex}.tmp"
    try:
        with tmp.open("wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(final.parent)


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``payload`` so that a reader sees the old or the new file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
