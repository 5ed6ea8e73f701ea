"""The latest stored bars, as the API's Bar objects (`quantum signal`, the chatbot's live
signal) and as the aligned frame (the chatbot's market facts)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def recent_frame(data_path: str | Path, assets: list[str], count: int,
                 exchange: str = "synthetic", timeframe: str = "1m") -> pd.DataFrame:
    """The last ``count`` bars of the aligned multi-asset frame (market.loader); only the
    stored files that can hold them are read, so this stays cheap on a year of data."""
    from market.loader import load_aligned
    from market.schema import perp_symbol, timeframe_ms
    from market.store import ParquetStore, SeriesKey

    store = ParquetStore(data_path)
    symbols = [a if "/" in a else perp_symbol(a) for a in assets]
    last = store.last_timestamp(SeriesKey.bars(exchange, symbols[0], timeframe))
    start = None
    if last is not None:
        start = last - pd.Timedelta(milliseconds=timeframe_ms(timeframe) * 2 * count)
    aligned = load_aligned(store, exchange, symbols, timeframe, start, None)
    return aligned.iloc[-count:]


def recent_bars(
    data_path: str | Path, assets: list[str], count: int, exchange: str = "synthetic",
    timeframe: str = "1m",
) -> dict[str, list[dict]]:
    """The last ``count`` stored bars per asset, as the API's Bar objects."""
    return bars_from_frame(recent_frame(data_path, assets, count, exchange, timeframe))


def bars_from_frame(tail: pd.DataFrame) -> dict[str, list[dict]]:
    """Rows of the aligned frame as the API's Bar objects, per asset."""
    stamps = (tail.index.as_unit("ms").asi8).tolist()
    out = {}
    for asset in tail.columns.get_level_values("asset").unique():
        frame = tail[asset]
        funding = frame["funding_rate"].where(frame["funding_event"] > 0)
        out[asset] = [
            {"timestamp": t, "open": o, "high": h, "low": lo, "close": c, "volume": v, "mark": m,
             "funding_rate": None if pd.isna(f) else f}
            for t, o, h, lo, c, v, m, f in zip(
                stamps, frame["open"], frame["high"], frame["low"], frame["close"],
                frame["volume"], frame["mark"], funding, strict=True,
            )
        ]
    return out
