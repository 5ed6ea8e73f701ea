"""One on-chain metric: confirmed Bitcoin transactions per day, from blockchain.com's
Charts API (no key needed).

Payload (``/charts/n-transactions?timespan=all&format=json&sampled=false``; ``x`` is the
start of the UTC day in Unix seconds, ``y`` that day's count)::

    {"status": "ok", "name": "Confirmed Transactions Per Day", "unit": "Transactions",
     "period": "day", "description": "...", "values": [{"x": 1442534400, "y": 188330.0}]}

Visibility rule: the count for day ``x`` is complete only when the day is over, so it is
visible from ``x + 1 day + publication_lag`` (default 3 hours: the chart is rebuilt by a
batch job some time after midnight; a setting, not a measurement). A payload whose
``period`` is not ``day`` is refused, since the rule would not hold for it.

Scale: the log-change of the newest visible count against the mean of up to ``trailing``
(default 7) visible counts before it, ``log1p(y) - log1p(mean(previous))``, clipped to
[-3, 3]; 0 while no earlier count is visible. Transaction counts grow over the years and
swing by weekday; the ratio to the last week is what moves with activity now, on a scale
near 0 (a 10% rise is about 0.1). The trailing counts are the previous observations,
whatever gaps lie between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from news.sources.base import FeatureSource, SourceConfig, entries, number, unix_seconds

CHART = "n-transactions"
URL = "https://api.blockchain.info/charts/"
CLIP = 3.0


class OnchainConfig(SourceConfig):
    """Settings of the transactions-per-day source (rules in the module doc)."""

    publication_lag: timedelta = timedelta(hours=3)
    """Added after the end of the value's day before it counts as published."""
    timespan: str = Field("all", pattern=r"^[0-9]*[a-z]+$")
    """The Charts API ``timespan``: ``all``, or a count and unit such as ``5years``."""
    trailing: int = Field(7, ge=1)
    """How many earlier daily counts the log-change is measured against."""


class BtcTransactions(FeatureSource):
    """Confirmed Bitcoin transactions per day (see module doc)."""

    name: ClassVar[str] = "btc_transactions"
    config_type: ClassVar[type[SourceConfig]] = OnchainConfig
    config: OnchainConfig

    @property
    def window(self) -> int:
        """The newest count and the ``trailing`` ones before it."""
        return self.config.trailing + 1

    @property
    def url(self) -> str:
        return f"{URL}{CHART}?timespan={self.config.timespan}&format=json&sampled=false"

    def read_values(self, document: Mapping[str, Any]) -> pd.DataFrame:
        status = document.get("status")
        if status != "ok":
            raise ValueError(f"{self.name}: the API status is {status!r}, not 'ok'")
        period = document.get("period")
        if period != "day":
            raise ValueError(f"{self.name}: the chart period is {period!r}, not 'day'; the "
                             "end-of-day publication rule needs daily values")
        rows = []
        for i, entry in enumerate(entries(document, "values", self.name)):
            where = f"{self.name}: values[{i}]"
            for field in ("x", "y"):
                if field not in entry:
                    raise ValueError(f"{where} has no {field!r}")
            count = number(entry["y"], f"{where} 'y'")
            if count < 0:
                raise ValueError(f"{where} 'y' is negative ({count:g})")
            rows.append((unix_seconds(entry["x"], f"{where} 'x'"), count))
        return pd.DataFrame(rows, columns=["time", "value"])

    def first_seen(self, time: pd.Series) -> pd.Series:
        return time + timedelta(days=1) + self.config.publication_lag

    def transform(self, history: np.ndarray) -> np.ndarray:
        counts = history[:, 0]
        if len(counts) < 2:
            return np.zeros(1)
        change = np.log1p(counts[-1]) - np.log1p(counts[:-1].mean())
        return np.clip(np.array([change]), -CLIP, CLIP)
