"""Import bars, mark-price bars and funding from parquet/CSV files into the store.

Files from elsewhere (exchange dumps, vendors, a colleague's notebook) disagree on
what a timestamp means, so nothing is guessed: the caller states the label
(``open``: the bar's open time, the store's convention; ``close``: its close time,
shifted back by one timeframe) and the time unit (epoch ``s``/``ms``/``ns``,
``iso`` strings, or ``datetime`` for columns that already hold timestamps). A
unit that decodes to dates outside 2009..2100 is refused as a wrong unit.

Every file goes through the store's schema and validation (sorted unique
timestamps on the grid, finite values, consistent OHLC), so a bad file is refused
whole and nothing is written. Re-importing is idempotent: by default only rows
after the stored last timestamp are appended (the store's append); ``replace``
makes the file the whole series instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from market.schema import TIMESTAMP, Kind, columns_of, conform, timeframe_ms
from market.store import ParquetStore, SeriesKey
from market.validate import DataValidationError, validate_series

Label = Literal["open", "close"]
TimeUnit = Literal["s", "ms", "ns", "iso", "datetime"]
_PLAUSIBLE = (pd.Timestamp("2009-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
_FOLDER_FILE = re.compile(
    r"^(?P<base>[A-Z0-9]+?)(?P<quote>USDT|USDC)_(?P<kind>ohlcv|mark|funding)\.(?:parquet|csv)$"
)


class ImportDataError(ValueError):
    """A file cannot be imported as stated; the message says what is wrong and what to do."""


class ImportConfig(BaseModel):
    """How to read one file into one series; every timestamp convention is explicit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind = Field(description="Series kind: ohlcv, mark or funding.")
    exchange: str = Field(min_length=1, description="Exchange name in the store, e.g. binanceusdm.")
    symbol: str = Field(description="ccxt unified symbol, e.g. BTC/USDT:USDT.")
    timeframe: str | None = Field(None, description="Bar timeframe (bars only; funding has none).")
    label: Label | None = Field(
        None, description="What a bar's timestamp marks: its open or its close time (bars only)."
    )
    time_unit: TimeUnit = Field(description="How timestamps are written: s, ms, ns, iso, datetime.")
    columns: tuple[tuple[str, str], ...] = Field(
        (), description="(store column, file column) renames, e.g. (('close', 'Close'),)."
    )
    replace: bool = Field(
        False, description="Make the file the whole series instead of appending newer rows."
    )

    @model_validator(mode="after")
    def _check(self) -> ImportConfig:
        if "/" not in self.symbol:
            raise ValueError(
                f"symbol {self.symbol!r} is not a ccxt unified symbol like BTC/USDT:USDT"
            )
        if self.kind is Kind.FUNDING:
            if self.timeframe is not None or self.label == "close":
                raise ValueError("funding rows are events at settlement times: no timeframe/label")
        else:
            if self.timeframe is None or self.label is None:
                raise ValueError(
                    f"{self.kind.value} bars need a timeframe and a label (open|close)"
                )
            timeframe_ms(self.timeframe)
        known = {TIMESTAMP, *columns_of(self.kind)}
        unknown = [target for target, _ in self.columns if target not in known]
        if unknown:
            raise ValueError(f"column mapping targets {unknown} are not among {sorted(known)}")
        return self

    @property
    def key(self) -> SeriesKey:
        """The store series this file goes to."""
        return SeriesKey(self.kind, self.exchange, self.symbol, self.timeframe)


@dataclass(frozen=True)
class ImportResult:
    """What one file contributed: rows read, rows written (the rest were already stored)."""

    key: SeriesKey
    path: Path
    rows: int
    written: int
    first: pd.Timestamp
    last: pd.Timestamp


def read_file(path: Path) -> pd.DataFrame:
    """The raw table of a parquet or CSV file (a stored index becomes a column)."""
    if not path.is_file():
        raise ImportDataError(f"{path}: no such file")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if suffixes.endswith((".parquet", ".pq")):
        reader = pd.read_parquet
    elif suffixes.endswith((".csv", ".csv.gz")):
        reader = pd.read_csv
    else:
        raise ImportDataError(f"{path}: unknown file type; use .parquet or .csv")
    try:
        frame = reader(path)
    except (OSError, ValueError) as exc:  # pyarrow's and pandas' parse errors are ValueErrors
        raise ImportDataError(f"{path}: cannot read it ({exc})") from exc
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    return frame


def to_series(raw: pd.DataFrame, config: ImportConfig, name: str) -> pd.DataFrame:
    """The store's frame for `raw` under `config`: renamed, typed, relabelled, validated."""
    if raw.empty:
        raise ImportDataError(f"{name}: the file has no rows")
    frame = raw.rename(columns={source: target for target, source in config.columns})
    wanted = [TIMESTAMP, *columns_of(config.kind)]
    if config.kind is Kind.MARK and "volume" not in frame.columns:
        frame = frame.assign(volume=0.0)  # mark prices do not trade
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ImportDataError(
            f"{name}: missing columns {missing} (the file has {list(raw.columns)}); "
            "map them with --column store_name=file_name, e.g. --column close=Close"
        )
    values = {}
    for col in wanted[1:]:
        numeric = pd.to_numeric(frame[col], errors="coerce")
        bad = numeric.isna() & frame[col].notna()
        if bad.any():
            raise ImportDataError(
                f"{name}: column {col!r} holds a non-number ({frame[col][bad].iloc[0]!r})"
            )
        values[col] = numeric.to_numpy(dtype="float64")
    index = pd.DatetimeIndex(parse_times(frame[TIMESTAMP], config.time_unit, name), name=TIMESTAMP)
    if config.label == "close":
        index = index - pd.Timedelta(milliseconds=timeframe_ms(config.timeframe or ""))
    out = conform(pd.DataFrame(values, index=index), config.kind)
    try:
        validate_series(out, config.kind, name, config.timeframe)
    except DataValidationError as exc:
        raise ImportDataError(f"{exc}{_grid_hint(out, config)}; nothing was written") from exc
    return out


def parse_times(column: pd.Series, unit: TimeUnit, name: str) -> pd.DatetimeIndex:
    """Decode a timestamp column in the stated unit to UTC nanoseconds, or refuse it."""
    is_datetime = pd.api.types.is_datetime64_any_dtype(column.dtype)
    if column.isna().any():
        raise ImportDataError(f"{name}: {int(column.isna().sum())} empty timestamps")
    if is_datetime != (unit == "datetime"):
        what = f"timestamps ({column.dtype})" if is_datetime else f"{column.dtype} values"
        raise ImportDataError(
            f"{name}: the timestamp column holds {what}, not --time-unit {unit}; "
            "datetime is for timestamp-typed columns, s/ms/ns for epoch numbers, iso for text"
        )
    try:
        if unit == "datetime":
            stamps = pd.DatetimeIndex(column)
        elif unit == "iso":
            if pd.api.types.is_numeric_dtype(column.dtype):
                raise ValueError("numbers are not ISO-8601 text; use --time-unit s, ms or ns")
            stamps = pd.DatetimeIndex(pd.to_datetime(column, format="ISO8601", utc=True))
        else:
            if not pd.api.types.is_numeric_dtype(column.dtype):
                raise ValueError(f"text is not epoch {unit}; use --time-unit iso")
            numbers = column.to_numpy(dtype="float64")
            if not np.array_equal(numbers, np.round(numbers)) and unit != "s":
                raise ValueError(f"epoch {unit} must be whole numbers")
            stamps = pd.DatetimeIndex(pd.to_datetime(column, unit=unit, utc=True))
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise ImportDataError(f"{name}: timestamps do not parse as {unit}: {exc}") from exc
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    if len(stamps) and (stamps.min() < _PLAUSIBLE[0] or stamps.max() >= _PLAUSIBLE[1]):
        raise ImportDataError(
            f"{name}: timestamps decode to {stamps.min()} .. {stamps.max()} with --time-unit "
            f"{unit}, outside 2009..2100: the unit is probably wrong"
        )
    return stamps.as_unit("ns")


def _grid_hint(frame: pd.DataFrame, config: ImportConfig) -> str:
    """A hint when stamps sit 1 ms before the grid: Binance-style closeTime values."""
    if config.timeframe is None or not len(frame):
        return ""
    offset = frame.index.asi8 % (timeframe_ms(config.timeframe) * 1_000_000)
    if (offset == timeframe_ms(config.timeframe) * 1_000_000 - 1_000_000).all():
        return " (they end in .999: that is an exchange closeTime; import the open time instead)"
    return ""


def import_file(store: ParquetStore, path: Path, config: ImportConfig) -> ImportResult:
    """Read, check and store one file; a bad file raises ImportDataError and writes nothing."""
    frame = to_series(read_file(path), config, f"{path.name} ({config.key})")
    return _write(store, path, config, frame)


def _write(
    store: ParquetStore, path: Path, config: ImportConfig, frame: pd.DataFrame
) -> ImportResult:
    source = f"import {path.name}"
    if config.replace:
        written = store.replace(config.key, frame, source)
    else:
        written = store.append(config.key, frame, source)
    return ImportResult(config.key, path, len(frame), written, frame.index[0], frame.index[-1])


class FolderImportConfig(BaseModel):
    """How to read a folder of `<BASE><QUOTE>_<ohlcv|mark|funding>.parquet|csv` files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str = Field(min_length=1, description="Exchange name in the store, e.g. binanceusdm.")
    timeframe: str = Field("1m", description="Timeframe of the ohlcv files.")
    mark_timeframe: str | None = Field(
        None,
        description="Timeframe of the mark files (8h in the shared sample); None skips them "
        "with a note rather than assume they share the ohlcv timeframe.",
    )
    label: Label = Field(description="What a bar's timestamp marks: its open or close time.")
    time_unit: TimeUnit = Field(description="How timestamps are written: s, ms, ns, iso, datetime.")
    columns: tuple[tuple[str, str], ...] = Field((), description="Renames, as in ImportConfig.")
    replace: bool = Field(False, description="Replace each series instead of appending.")

    def file_config(self, kind: Kind, symbol: str) -> ImportConfig:
        """The single-file config of one file of this folder."""
        bars = kind is not Kind.FUNDING
        timeframe = self.mark_timeframe if kind is Kind.MARK else self.timeframe
        return ImportConfig(
            kind=kind, exchange=self.exchange, symbol=symbol,
            timeframe=timeframe if bars else None, label=self.label if bars else None,
            time_unit=self.time_unit, columns=self.columns, replace=self.replace,
        )


@dataclass(frozen=True)
class FolderReport:
    """Per-file results of a folder import and the files it left out, with the reason."""

    results: tuple[ImportResult, ...]
    skipped: tuple[tuple[Path, str], ...]


def plan_folder(
    folder: Path, config: FolderImportConfig
) -> tuple[list[tuple[Path, ImportConfig]], list[tuple[Path, str]]]:
    """Map the folder's files to single-file configs; other files are skipped with why."""
    if not folder.is_dir():
        raise ImportDataError(f"{folder}: no such folder")
    plan, skipped = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        match = _FOLDER_FILE.match(path.name)
        if match is None:
            skipped.append((path, "name is not <BASE><QUOTE>_<ohlcv|mark|funding>.parquet|csv"))
            continue
        kind = Kind(match["kind"])
        if kind is Kind.MARK and config.mark_timeframe is None:
            skipped.append((path, "mark bars: pass --mark-timeframe (8h in the shared sample)"))
            continue
        symbol = f"{match['base']}/{match['quote']}:{match['quote']}"
        plan.append((path, config.file_config(kind, symbol)))
    if not plan:
        raise ImportDataError(
            f"{folder}: no importable files (expected e.g. BTCUSDT_ohlcv.parquet)"
        )
    return plan, skipped


def import_folder(store: ParquetStore, folder: Path, config: FolderImportConfig) -> FolderReport:
    """Import every recognised file of `folder`; all files are checked before any is written."""
    plan, skipped = plan_folder(folder, config)
    frames = [to_series(read_file(p), c, f"{p.name} ({c.key})") for p, c in plan]
    results = tuple(_write(store, p, c, f) for (p, c), f in zip(plan, frames, strict=True))
    return FolderReport(results, tuple(skipped))
