"""Collect from the fake binanceusdm slowly, one store file per page, so a test can kill -9 it.

Usage: python -m tests.unit.market.collect_subprocess STORE_ROOT PAGE_DELAY_S
"""

from __future__ import annotations

import sys

from market.collector import CollectConfig, collect
from market.schema import Kind
from market.store import ParquetStore
from tests.unit.market.ccxt_fakes import DATA_START, BinanceVenue, fake_exchange

KILL_CONFIG = CollectConfig(
    exchange="binanceusdm",
    symbols=("BTC/USDT:USDT",),
    since=DATA_START,
    kinds=(Kind.OHLCV,),
    page_limit=60,
    flush_every_pages=1,
)
"""What the killed run collects; the test resumes with the same config."""


def main(root: str, page_delay_s: float) -> None:
    venue = BinanceVenue(page_delay_s=page_delay_s)
    collect(fake_exchange(venue), ParquetStore(root), KILL_CONFIG, sleep=lambda _: None)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
