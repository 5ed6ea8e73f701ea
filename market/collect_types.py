"""What a collection run is asked to do and what it reports (see market.collector)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ccxt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from market.schema import Kind, timeframe_ms, to_utc_timestamp
from market.store import SeriesKey


class CollectConfig(BaseModel):
    """What to collect, from where, and how hard to retry (each field's docstring is its help)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    exchange: str
    """ccxt exchange id (binanceusdm, bybit, okx, ...); also the exchange name in the store."""
    symbols: tuple[str, ...] = Field(min_length=1)
    """ccxt unified symbols of linear perpetuals, e.g. BTC/USDT:USDT."""
    since: datetime
    """UTC start (date, ISO time or epoch ms); a stored series resumes from its end if later."""
    until: datetime | None = None
    """UTC end, exclusive; None = now. Bars still open at the end are never stored."""
    timeframe: str = "1m"
    """Bar timeframe of the OHLCV and mark-price series (1m, 5m, 1h, ...)."""
    kinds: tuple[Kind, ...] = Field((Kind.OHLCV, Kind.MARK, Kind.FUNDING), min_length=1)
    """Series kinds to collect; kinds the exchange lacks (exchange.has) are skipped, logged."""
    page_limit: int | None = Field(None, ge=1)
    """Rows per request; None = the exchange's maximum. Never raised above that maximum."""
    max_retries: int = Field(5, ge=0)
    """Retries of one request after a network error (timeout, rate limit, unavailable)."""
    backoff_base_s: float = Field(1.0, gt=0)
    """Delay before the first retry, in seconds; doubles with each retry (plus jitter)."""
    backoff_max_s: float = Field(60.0, gt=0)
    """Cap on one retry delay, in seconds."""
    flush_every_pages: int = Field(10, ge=1)
    """Write to the store every this many pages: a crash loses at most these pages."""

    @field_validator("since", "until", mode="before")
    @classmethod
    def _to_utc(cls, value: Any) -> Any:
        return None if value is None else to_utc_timestamp(value).to_pydatetime()

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, value: str) -> str:
        if value not in ccxt.exchanges:
            raise ValueError(f"unknown ccxt exchange id {value!r}; e.g. binanceusdm, bybit, okx")
        return value

    @field_validator("symbols")
    @classmethod
    def _clean_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        symbols = tuple(dict.fromkeys(s.strip() for s in value if s.strip()))
        if not symbols:
            raise ValueError("give at least one symbol, e.g. BTC/USDT:USDT")
        return symbols

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, value: str) -> str:
        timeframe_ms(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> CollectConfig:
        if self.until is not None and self.until <= self.since:
            raise ValueError(f"until ({self.until}) must be after since ({self.since})")
        return self


@dataclass(frozen=True)
class SeriesProgress:
    """One progress event: everything in [start, position) has been fetched."""

    key: SeriesKey
    start: pd.Timestamp
    position: pd.Timestamp
    target: pd.Timestamp
    rows_fetched: int
    rows_written: int
    pages: int
    done: bool = False

    @property
    def fraction(self) -> float:
        """Share of the time span fetched, in [0, 1] (for a progress bar)."""
        span = (self.target - self.start).value
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.position - self.start).value / span))


ProgressCallback = Callable[[SeriesProgress], None]


@dataclass(frozen=True)
class SeriesReport:
    """What one series' collection did."""

    key: SeriesKey
    start: pd.Timestamp
    target: pd.Timestamp
    rows_written: int
    pages: int
    retries: int
    stored_until: pd.Timestamp | None


@dataclass(frozen=True)
class CollectReport:
    """What a collection run did, per series; `skipped` lists kinds the exchange lacks."""

    exchange: str
    series: tuple[SeriesReport, ...]
    skipped: tuple[tuple[SeriesKey, str], ...] = ()
    setup_retries: int = 0

    @property
    def rows_written(self) -> int:
        return sum(s.rows_written for s in self.series)

    @property
    def pages(self) -> int:
        return sum(s.pages for s in self.series)

    @property
    def retries(self) -> int:
        return self.setup_retries + sum(s.retries for s in self.series)
