"""Load stored series into the aligned multi-asset frame that the environment reads.

This module builds every aligned frame: ``asset_fields`` (one asset's fields from its bars)
and ``aligned_frame`` (the assets side by side) are what serving and the chatbot use too.

Gap policy. Assets are aligned on one common bar grid from the latest first bar
to the earliest last bar across assets (no asset is ever extrapolated). A bar
missing inside that span (exchange maintenance, a delisted hour) is handled by
``gaps``:

- ``"ffill"`` (default): the bar is filled flat at the previous close (open = high
  = low = close = previous close, volume 0), and its ``filled`` field is 1.0 so
  features, the env and reports can see it. At most ``max_gap_bars`` consecutive
  bars are filled; a longer gap is an error, because hours of invented flat
  prices would teach a policy something false.
- ``"raise"``: any missing bar is an error.

Forward filling uses only the past, so it never leaks future prices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from market.schema import (
    ALIGNED_FIELDS,
    OHLCV_COLUMNS,
    TIMESTAMP,
    Kind,
    asset_of,
    perp_symbol,
    timeframe_ms,
)
from market.store import ParquetStore, SeriesKey
from market.validate import DataValidationError

GapPolicy = Literal["ffill", "raise"]
_MARK, _RATE, _EVENT, _FILLED = (
    ALIGNED_FIELDS.index(f) for f in ("mark", "funding_rate", "funding_event", "filled")
)
"""Column positions in asset_fields' output (ALIGNED_FIELDS order)."""


def asset_fields(
    ohlcv: np.ndarray,
    mark: np.ndarray | None = None,
    funding_rate: np.ndarray | None = None,
    funding_event: np.ndarray | None = None,
    filled: np.ndarray | None = None,
) -> np.ndarray:
    """One asset's ALIGNED_FIELDS columns, (bars, 9) float64, from its bars in time order.

    Every builder of the aligned frame (the loader, serving's request bars, the chatbot's
    market files, the generated test frames) goes through here, so each field means one
    thing everywhere (see market.schema.ALIGNED_FIELDS):

    - ``ohlcv``: (bars, 5) open, high, low, close, volume, gaps already dealt with.
    - ``mark``: each bar's mark-price close, NaN where unknown; an unknown one is the
      previous known mark, else the bar's close. None: close.
    - ``funding_rate``: the rate of a funding event at the bar's close; ignored (0) at bars
      without one. None: no funding.
    - ``funding_event``: 1 where an event happens at the bar's close. None: where
      ``funding_rate`` is not NaN.
    - ``filled``: 1 for a bar invented over a gap. None: no bar was.
    """
    values = np.asarray(ohlcv, dtype=np.float64)
    n = len(values)
    if values.shape != (n, len(OHLCV_COLUMNS)):
        raise ValueError(f"ohlcv must be (bars, {len(OHLCV_COLUMNS)}), got {values.shape}")
    close = values[:, OHLCV_COLUMNS.index("close")]
    out = np.zeros((n, len(ALIGNED_FIELDS)))
    out[:, : len(OHLCV_COLUMNS)] = values
    out[:, _MARK] = close
    if mark is not None:
        mark = np.asarray(mark, dtype=np.float64)
        known = mark[np.maximum.accumulate(np.where(np.isnan(mark), 0, np.arange(n)))]
        out[:, _MARK] = np.where(np.isnan(known), close, known)
    if funding_rate is not None:
        rate = np.asarray(funding_rate, dtype=np.float64)
        event = ~np.isnan(rate) if funding_event is None else np.asarray(funding_event) != 0
        out[:, _RATE] = np.where(event, rate, 0.0)
        out[:, _EVENT] = event
    elif funding_event is not None:
        raise ValueError("funding_event without funding_rate: the events' rates are unknown")
    if filled is not None:
        out[:, _FILLED] = filled
    return out


def aligned_frame(index: pd.DatetimeIndex, fields: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The aligned multi-asset frame from each asset's :func:`asset_fields`, in the order
    given: columns a MultiIndex (``asset``, ``field``), the index `index` named TIMESTAMP
    (bar open times; its unit is kept)."""
    width = len(ALIGNED_FIELDS)
    values = np.empty((len(index), len(fields) * width))
    for j, (asset, columns) in enumerate(fields.items()):
        if np.shape(columns) != (len(index), width):
            raise ValueError(f"{asset}: fields must be ({len(index)}, {width}), "
                             f"got {np.shape(columns)}")
        values[:, j * width : (j + 1) * width] = columns
    columns = pd.MultiIndex.from_product([list(fields), ALIGNED_FIELDS], names=["asset", "field"])
    return pd.DataFrame(values, index=pd.DatetimeIndex(index, name=TIMESTAMP), columns=columns)


def align_asset(
    bars: pd.DataFrame,
    mark: pd.DataFrame | None,
    funding: pd.DataFrame | None,
    grid: pd.DatetimeIndex,
    timeframe: str,
    gaps: GapPolicy = "ffill",
    max_gap_bars: int = 60,
    name: str = "",
) -> pd.DataFrame:
    """One asset's fields (ALIGNED_FIELDS) on `grid`, applying the gap policy."""
    return pd.DataFrame(
        _align_values(bars, mark, funding, grid, timeframe, gaps, max_gap_bars, name),
        index=grid,
        columns=list(ALIGNED_FIELDS),
    )


def _align_values(
    bars: pd.DataFrame,
    mark: pd.DataFrame | None,
    funding: pd.DataFrame | None,
    grid: pd.DatetimeIndex,
    timeframe: str,
    gaps: GapPolicy,
    max_gap_bars: int,
    name: str,
) -> np.ndarray:
    """:func:`align_asset`'s values: stored series on the grid, as asset_fields."""
    bars = bars.reindex(grid)
    missing = bars["close"].isna().to_numpy()
    if missing.any():
        _check_gaps(missing, grid, gaps, max_gap_bars, name)
        prev_close = bars["close"].ffill()
        for col in ("open", "high", "low", "close"):
            bars[col] = bars[col].fillna(prev_close)
        bars["volume"] = bars["volume"].fillna(0.0)
    has_mark = mark is not None and len(mark)
    rates, events = _funding_on_grid(funding, grid, timeframe)
    return asset_fields(
        bars[list(OHLCV_COLUMNS)].to_numpy(dtype=np.float64),
        mark["close"].reindex(grid).to_numpy(dtype=np.float64) if has_mark else None,
        rates,
        events,
        missing,
    )


def _funding_on_grid(
    funding: pd.DataFrame | None, grid: pd.DatetimeIndex, timeframe: str
) -> tuple[np.ndarray, np.ndarray]:
    """Place each funding event on the bar that closes at the event time.

    A position held through bar [t, t + tf) is the one that pays the event at
    t + tf, and the rate is known when that bar closes, so this is the bar whose
    decision sees it, never an earlier one.
    """
    rates, events = np.zeros(len(grid)), np.zeros(len(grid))
    if funding is None or not len(funding):
        return rates, events
    bar_close = grid.as_unit("ns").asi8 + timeframe_ms(timeframe) * 1_000_000
    stamps = funding.index.as_unit("ns").asi8
    pos = np.searchsorted(bar_close, stamps)
    hit = (pos < len(grid)) & (bar_close[np.minimum(pos, len(grid) - 1)] == stamps)
    rates[pos[hit]] = funding["funding_rate"].to_numpy()[hit]
    events[pos[hit]] = 1.0
    return rates, events


def _check_gaps(
    missing: np.ndarray, grid: pd.DatetimeIndex, gaps: GapPolicy, max_gap_bars: int, name: str
) -> None:
    first = grid[np.argmax(missing)]
    if gaps == "raise":
        raise DataValidationError(
            f"{name}: {int(missing.sum())} missing bars, first at {first}; "
            "re-collect the range or load with gaps='ffill'"
        )
    edges = np.diff(np.r_[0, missing.astype(np.int8), 0])
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    if lengths.max() > max_gap_bars:
        raise DataValidationError(
            f"{name}: a gap of {int(lengths.max())} bars exceeds max_gap_bars={max_gap_bars} "
            f"(first missing bar {first}); re-collect it or raise max_gap_bars"
        )


def load_aligned(
    store: ParquetStore,
    exchange: str,
    symbols: Sequence[str],
    timeframe: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    gaps: GapPolicy = "ffill",
    max_gap_bars: int = 60,
) -> pd.DataFrame:
    """The aligned multi-asset frame (see market.schema.ALIGNED_FIELDS) for `symbols`.

    Columns are a MultiIndex ("asset", "field") with short asset names in the
    order given; the index is the common bar grid in [start, end).
    """
    if not symbols:
        raise ValueError("no symbols given")
    assets = [asset_of(s) for s in symbols]
    if len(set(assets)) != len(assets):
        raise ValueError(f"symbols map to duplicate asset names: {assets}")
    bars = {s: store.read(SeriesKey.bars(exchange, s, timeframe), start, end) for s in symbols}
    empty = [s for s, b in bars.items() if b.empty]
    if empty:
        raise DataValidationError(
            f"no {timeframe} bars stored for {exchange} {empty} in the requested span under "
            f"{store.root}; run `quantum data collect` or `quantum data synth` first"
        )
    lo = max(b.index[0] for b in bars.values())
    hi = min(b.index[-1] for b in bars.values())
    if hi < lo:
        raise DataValidationError(f"{exchange} {list(symbols)}: the assets' spans do not overlap")
    grid = pd.date_range(lo, hi, freq=pd.Timedelta(milliseconds=timeframe_ms(timeframe)))
    grid = grid.as_unit("ns").rename(TIMESTAMP)
    fields = {}
    for asset, symbol in zip(assets, symbols, strict=True):
        mark = store.read(SeriesKey.bars(exchange, symbol, timeframe, Kind.MARK), start, end)
        funding = store.read(SeriesKey.funding(exchange, symbol), start, end)
        name = f"{exchange} {symbol} {timeframe}"
        fields[asset] = _align_values(
            bars[symbol], mark, funding, grid, timeframe, gaps, max_gap_bars, name
        )
    return aligned_frame(grid, fields)


DEFAULT_SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")
"""The symbols envs.registry loads when an env_config names none."""


class MarketChoiceError(ValueError):
    """A store lacks the exchange or symbols asked for; the message says what it holds."""


def choose_exchange(store: ParquetStore, exchange: str | None) -> str:
    """``exchange`` if the store holds its bars; without one, the store's only exchange."""
    stored = store.exchanges()
    if not stored:
        raise MarketChoiceError(
            f"no market data under {store.root}: run `quantum data synth`, "
            "`quantum data collect` or `quantum data import` first"
        )
    if exchange is None:
        if len(stored) > 1:
            raise MarketChoiceError(
                f"{store.root} holds several exchanges ({', '.join(stored)}): "
                "choose one with --exchange"
            )
        return stored[0]
    if exchange not in stored:
        raise MarketChoiceError(
            f"no {exchange} bars under {store.root}; it holds: {', '.join(stored)}"
        )
    return exchange


def choose_symbols(
    store: ParquetStore, exchange: str, symbols: Sequence[str] | None, timeframe: str = "1m"
) -> list[str]:
    """``symbols`` if every one is stored; without any, DEFAULT_SYMBOLS when they are all
    stored, else every stored symbol of ``exchange`` (sorted: a stable order)."""
    stored = store.symbols(exchange, timeframe)
    if not stored:
        other = sorted({k.timeframe or "" for k in store.series()
                        if k.kind is Kind.OHLCV and k.exchange == exchange})
        raise MarketChoiceError(
            f"no {timeframe} bars of {exchange} under {store.root} "
            f"(stored timeframes: {', '.join(other) or 'none'})"
        )
    if not symbols:
        return list(DEFAULT_SYMBOLS) if set(DEFAULT_SYMBOLS) <= set(stored) else stored
    missing = [s for s in symbols if s not in stored]
    if missing:
        raise MarketChoiceError(
            f"{exchange} under {store.root} has no {timeframe} bars of {', '.join(missing)}; "
            f"stored: {', '.join(stored)}"
        )
    return list(symbols)


def symbols_of_assets(assets: Sequence[str], stored: Sequence[str]) -> list[str]:
    """Asset names ('BTC', as a run records them) as symbols of a store: the USDT perp if
    stored, else the one stored symbol of that base, else the USDT perp (which the caller
    then reports missing). Names that are symbols already ('ETH/USDT:USDT') are kept."""
    out = []
    for asset in assets:
        if "/" in asset:
            out.append(asset)
            continue
        same = [s for s in stored if asset_of(s) == asset]
        out.append(same[0] if len(same) == 1 else perp_symbol(asset))
    return out
