"""Load stored series into the aligned multi-asset frame that the environment reads.

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

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from market.schema import ALIGNED_FIELDS, TIMESTAMP, Kind, asset_of, perp_symbol, timeframe_ms
from market.store import ParquetStore, SeriesKey
from market.validate import DataValidationError

GapPolicy = Literal["ffill", "raise"]


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
    bars = bars.reindex(grid)
    missing = bars["close"].isna().to_numpy()
    if missing.any():
        _check_gaps(missing, grid, gaps, max_gap_bars, name)
        prev_close = bars["close"].ffill()
        for col in ("open", "high", "low", "close"):
            bars[col] = bars[col].fillna(prev_close)
        bars["volume"] = bars["volume"].fillna(0.0)
    out = bars.copy()
    mark_close = mark["close"].reindex(grid).ffill() if mark is not None and len(mark) else None
    out["mark"] = out["close"] if mark_close is None else mark_close.fillna(out["close"])
    out["funding_rate"], out["funding_event"] = _funding_on_grid(funding, grid, timeframe)
    out["filled"] = missing.astype("float64")
    return out[list(ALIGNED_FIELDS)]


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
    frames = []
    for symbol in symbols:
        mark = store.read(SeriesKey.bars(exchange, symbol, timeframe, Kind.MARK), start, end)
        funding = store.read(SeriesKey.funding(exchange, symbol), start, end)
        frames.append(
            align_asset(
                bars[symbol],
                mark,
                funding,
                grid,
                timeframe,
                gaps,
                max_gap_bars,
                f"{exchange} {symbol} {timeframe}",
            )
        )
    return pd.concat(frames, axis=1, keys=assets, names=["asset", "field"])


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
