"""Small deterministic series for store/loader tests (no synthetic-market dependency)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_bars(n: int, start: str = "2024-01-01", freq: str = "1min", seed: int = 0) -> pd.DataFrame:
    """A valid OHLCV series of `n` bars on the `freq` grid: a positive random walk."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 1e-3, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 1e-3, n))
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp").as_unit("ns")
    data = {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": rng.uniform(1, 10, n),
    }
    return pd.DataFrame(data, index=index)


def make_funding(start: str, periods: int, seed: int = 0) -> pd.DataFrame:
    """Funding events every 8 hours starting at `start`."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=periods, freq="8h", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"funding_rate": rng.normal(1e-4, 1e-4, periods)}, index=index.as_unit("ns")
    )


def store_with(root, series: dict[str, list[str]]):
    """A ParquetStore at ``root`` holding 30 one-minute bars for every exchange's symbols
    in ``series`` ({exchange: [symbol, ...]}); returns ``root``."""
    from market.store import ParquetStore, SeriesKey

    store = ParquetStore(root)
    for exchange, symbols in series.items():
        for symbol in symbols:
            store.append(SeriesKey.bars(exchange, symbol, "1m"), make_bars(30))
    return root
