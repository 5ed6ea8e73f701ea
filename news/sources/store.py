"""Observations of each feature source as parquet, merged on every import or fetch.

Layout (a Hive-partitioned dataset beside the news one)::

    ROOT/sources/source=<name>/data.parquet    time, first_seen (UTC, ms), value columns
    ROOT/sources/source=<name>/.lock           one writer at a time

Why this shape:
- One small file per source (a few thousand daily rows), rewritten whole through
  ``market.store.write_parquet_atomic``: a reader sees the old or the new file, never half,
  and a killed writer leaves only a hidden temp file that the next writer removes.
- Merge keeps the point-in-time view: one row per ``time``, the one with the earliest
  ``first_seen``, and on a tie the row already stored. A re-fetched or revised value never
  replaces the value we could have known first. (When the lag setting changes between
  imports, each time keeps the earliest ``first_seen`` it was ever stored with.)
- Nothing is written until the new observations are parsed and checked, and a stored file
  that does not read stops the write with an error naming it (it is never overwritten).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from market.store import locked_dir, write_parquet_atomic
from news.sources.base import TIME_COLUMNS

SOURCES_DIR = "sources"
DATA_FILE = "data.parquet"
_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")


class SourceStoreError(RuntimeError):
    """A source's stored observations cannot be read or written; the message says what to do."""


class MissingSourceError(SourceStoreError):
    """Nothing is stored for a source yet; the message names the command that fills it."""


@dataclass(frozen=True)
class MergeResult:
    """What one write did: rows offered, rows new to the store, rows stored after it."""

    offered: int
    added: int
    total: int
    path: Path


def source_path(data_dir: str | os.PathLike[str], name: str) -> Path:
    """``<data_dir>/sources/source=<name>/data.parquet``."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"source name {name!r}: use lower-case letters, digits and _")
    return Path(data_dir) / SOURCES_DIR / f"source={name}" / DATA_FILE


def stored_sources(data_dir: str | os.PathLike[str]) -> list[str]:
    """Names of the sources with a stored file under ``data_dir``, sorted."""
    root = Path(data_dir) / SOURCES_DIR
    if not root.is_dir():
        return []
    return sorted(sub.name.removeprefix("source=") for sub in root.glob("source=*")
                  if (sub / DATA_FILE).is_file())


def read_observations(data_dir: str | os.PathLike[str], name: str) -> pd.DataFrame:
    """The stored observations of source ``name``, sorted by time.

    Raises MissingSourceError when nothing is stored (naming the commands that fill it)
    and SourceStoreError when the file does not read."""
    path = source_path(data_dir, name)
    if not path.is_file():
        raise MissingSourceError(
            f"no observations of source {name!r} under {Path(data_dir)} (looked for {path}); "
            f"fill it with `quantum news sources fetch --source {name} --data {data_dir}` "
            f"or, offline, `quantum news sources import --source {name} --file SAVED.json "
            f"--data {data_dir}`"
        )
    return _frame(_read_table(path))


def write_observations(data_dir: str | os.PathLike[str], name: str,
                       observations: pd.DataFrame) -> MergeResult:
    """Merge ``observations`` (TIME_COLUMNS + value columns) into the store of ``name``
    (rules in the module doc) and return what changed.

    Raises ValueError for malformed observations and SourceStoreError for a damaged or
    incompatible stored file; in both cases the store is left as it was."""
    path = source_path(data_dir, name)
    new = _checked(observations, name)
    with locked_dir(path.parent):
        old = _frame(_read_table(path)) if path.is_file() else None
        if old is not None and list(old.columns) != list(new.columns):
            raise SourceStoreError(
                f"{path} holds columns {list(old.columns)} but the new observations have "
                f"{list(new.columns)}; move the file away to start the source afresh"
            )
        merged = new if old is None else pd.concat([old, new], ignore_index=True)
        merged = (merged.sort_values(["time", "first_seen"], kind="stable")
                  .drop_duplicates("time", keep="first").reset_index(drop=True))
        write_parquet_atomic(_table(merged), path)
    known = 0 if old is None else len(old)
    return MergeResult(offered=len(new), added=len(merged) - known, total=len(merged),
                       path=path)


def _checked(observations: pd.DataFrame, name: str) -> pd.DataFrame:
    columns = list(observations.columns)
    if columns[:2] != list(TIME_COLUMNS) or len(columns) < 3:
        raise ValueError(f"{name}: observations need columns time, first_seen and at least "
                         f"one value column, got {columns}")
    frame = observations.copy()
    for column in TIME_COLUMNS:
        stamps = pd.to_datetime(frame[column], utc=True)
        if stamps.isna().any():
            raise ValueError(f"{name}: {column} has missing times")
        frame[column] = stamps.dt.floor("ms").astype("datetime64[ms, UTC]")
    for column in columns[2:]:
        values = pd.to_numeric(frame[column], errors="raise").astype(np.float64)
        if not np.isfinite(values.to_numpy()).all():
            raise ValueError(f"{name}: {column} has missing or non-finite values")
        frame[column] = values
    if frame["time"].duplicated().any():
        raise ValueError(f"{name}: the new observations list a time twice")
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def _schema(value_columns: Sequence[str]) -> pa.Schema:
    times = [pa.field(c, pa.timestamp("ms", tz="UTC"), nullable=False) for c in TIME_COLUMNS]
    values = [pa.field(c, pa.float64(), nullable=False) for c in value_columns]
    return pa.schema(times + values)


def _table(frame: pd.DataFrame) -> pa.Table:
    schema = _schema([c for c in frame.columns if c not in TIME_COLUMNS])
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def _read_table(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise SourceStoreError(
            f"cannot read source file {path} ({str(exc).rstrip('.')}); it is damaged "
            "(copied or edited outside Quantum?): move it away and import or fetch again"
        ) from exc
    names = table.column_names
    if names[:2] != list(TIME_COLUMNS) or len(names) < 3:
        raise SourceStoreError(f"source file {path} has columns {names}, not time, "
                               "first_seen and values; move it away and fetch again")
    return table


def _frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    for column in TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ms, UTC]")
    return frame.sort_values("time", kind="stable").reset_index(drop=True)
