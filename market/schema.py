"""The data contract every layer reads: dataset kinds, column schemas, timeframes.

One stored series is identified by (kind, exchange, symbol, timeframe):

- ``ohlcv``   traded-price bars: open, high, low, close, volume (base units)
- ``mark``    mark-price bars, same columns (volume is 0: mark prices do not trade)
- ``funding`` funding events: funding_rate at each funding timestamp

In memory a series is a pandas DataFrame indexed by a ``DatetimeIndex`` named
``timestamp`` (UTC, nanosecond). A bar's timestamp is its *open* time, as ccxt and
every exchange report it: the bar stamped 00:00 on a 1m timeframe closes at 00:01.
Prices and rates are float64. On disk the index becomes a ``timestamp`` column of
Arrow type ``timestamp[ns, tz=UTC]``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import ccxt
import pandas as pd
import pyarrow as pa

TIMESTAMP: Final = "timestamp"
OHLCV_COLUMNS: Final = ("open", "high", "low", "close", "volume")
FUNDING_COLUMNS: Final = ("funding_rate",)
FUNDING_INTERVAL_MS: Final = 8 * 3600 * 1000
"""Funding is exchanged every 8 hours (00:00, 08:00, 16:00 UTC) on the default venues."""


class Kind(StrEnum):
    """The kinds of series the store holds."""

    OHLCV = "ohlcv"
    MARK = "mark"
    FUNDING = "funding"


def columns_of(kind: Kind) -> tuple[str, ...]:
    """Value columns (besides the timestamp) of a series of this kind."""
    return FUNDING_COLUMNS if kind is Kind.FUNDING else OHLCV_COLUMNS


def arrow_schema(kind: Kind) -> pa.Schema:
    """The Arrow schema of one stored file of this kind."""
    fields = [pa.field(TIMESTAMP, pa.timestamp("ns", tz="UTC"), nullable=False)]
    fields += [pa.field(c, pa.float64(), nullable=False) for c in columns_of(kind)]
    return pa.schema(fields)


def timeframe_ms(timeframe: str) -> int:
    """Milliseconds in one bar of a ccxt timeframe string ('1m', '5m', '1h', '1d')."""
    try:
        seconds = ccxt.Exchange.parse_timeframe(timeframe)
    except Exception as exc:
        raise ValueError(f"unknown timeframe {timeframe!r}; use e.g. 1m, 5m, 1h, 4h, 1d") from exc
    if seconds <= 0:
        raise ValueError(f"unknown timeframe {timeframe!r}; use e.g. 1m, 5m, 1h, 4h, 1d")
    return int(seconds * 1000)


def bars_per_year(timeframe: str) -> float:
    """Bars in a 365-day year: crypto trades around the clock (annualise per bar with this)."""
    return 365 * 24 * 3600 * 1000 / timeframe_ms(timeframe)


def asset_of(symbol: str) -> str:
    """Short asset name of a ccxt unified symbol: 'BTC/USDT:USDT' -> 'BTC'."""
    return symbol.split("/")[0]


def perp_symbol(asset: str, quote: str = "USDT") -> str:
    """ccxt unified symbol of a linear perpetual: 'BTC' -> 'BTC/USDT:USDT'."""
    return f"{asset}/{quote}:{quote}"


def to_utc_timestamp(value: str | int | pd.Timestamp) -> pd.Timestamp:
    """Parse a date, ISO string, pandas Timestamp or epoch milliseconds into a UTC Timestamp."""
    if isinstance(value, int):
        return pd.Timestamp(value, unit="ms", tz="UTC")
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def to_ms(ts: pd.Timestamp) -> int:
    """Epoch milliseconds of a UTC Timestamp (what ccxt's `since` takes)."""
    return int(ts.value // 1_000_000)


def empty_frame(kind: Kind) -> pd.DataFrame:
    """An empty series of this kind with the right index and dtypes."""
    index = pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name=TIMESTAMP)
    return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns_of(kind)}, index=index)


ALIGNED_FIELDS: Final = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "mark",
    "funding_rate",
    "funding_event",
    "filled",
)
"""Fields per asset of the aligned multi-asset frame (see ``market.loader.load_aligned``).

- open/high/low/close/volume: the traded-price bar (timestamp = bar open time)
- mark: mark-price close of the bar (equals close where no mark series is stored)
- funding_rate: the rate of a funding event whose timestamp equals this bar's
  close time, 0.0 at bars without one (so it is known when the bar closes)
- funding_event: 1.0 where a funding event happens at this bar's close, else 0.0
- filled: 1.0 for a bar the loader forward-filled over a gap, else 0.0

The frame's columns are a ``pd.MultiIndex`` named ("asset", "field") with assets
as short names ('BTC'); its index is the bar open time (UTC, ns).
"""


def conform(frame: pd.DataFrame, kind: Kind) -> pd.DataFrame:
    """Return `frame` in the canonical in-memory form: ns UTC index, float64 value columns.

    pandas 3 creates microsecond-resolution timestamps by default; the store and
    every consumer use nanoseconds, so convert (losslessly) at the boundary.
    """
    cols = list(columns_of(kind))
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{kind.value} frame is missing columns {missing}")
    out = frame[cols].astype("float64")
    if isinstance(out.index, pd.DatetimeIndex):
        index = out.index.as_unit("ns")
        if index.tz is None:
            raise ValueError(f"{kind.value} frame index must be tz-aware UTC timestamps")
        out.index = index.tz_convert("UTC").rename(TIMESTAMP)
    return out
