"""The shared real-data sample (../shared/realdata, Binance USDT-M 1m) for market tests.

CI has it; a checkout without it skips the tests that need it, saying why.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from market.importer import ImportConfig, import_file
from market.store import ParquetStore

REALDATA = Path(__file__).resolve().parents[3].parent / "shared" / "realdata"
SAMPLE = REALDATA / "binance_usdm_1m_2023-07_2023-08"
EXCHANGE = "binanceusdm"
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")

needs_sample = pytest.mark.skipif(
    not SAMPLE.is_dir(), reason=f"real-data sample not found at {SAMPLE} (CI has it)"
)


def source_frame(name: str) -> pd.DataFrame:
    """One sample file as stored there: timestamp column -> index."""
    return pd.read_parquet(SAMPLE / name).set_index("timestamp")


def import_sample(root: Path, symbols: tuple[str, ...] = SYMBOLS) -> ParquetStore:
    """A store holding the sample's 1m bars and funding of `symbols`."""
    store = ParquetStore(root)
    for symbol in symbols:
        stem = symbol.split("/")[0] + "USDT"
        for kind, timeframe in (("ohlcv", "1m"), ("funding", None)):
            config = ImportConfig(
                kind=kind, exchange=EXCHANGE, symbol=symbol, timeframe=timeframe,
                label="open" if timeframe else None, time_unit="datetime",
            )
            import_file(store, SAMPLE / f"{stem}_{kind}.parquet", config)
    return store
