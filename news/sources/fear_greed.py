"""alternative.me's Crypto Fear & Greed Index: one market-wide sentiment reading a day,
0 (extreme fear) to 100 (extreme greed), history back to 2018-02-01, no key needed.

Payload (``/fng/?limit=0&format=json``, newest first, numbers as strings)::

    {"name": "Fear and Greed Index",
     "data": [{"value": "40", "value_classification": "Fear", "timestamp": "1551157200",
               "time_until_update": "68499"}, ...],
     "metadata": {"error": null}}

Visibility rule: the value stamped ``timestamp`` (the start of its UTC day) is visible from
``timestamp + publication_lag`` (default 1 hour). Why: the index is recomputed once a day
at the UTC day boundary (``time_until_update``, on the newest entry only, counts down to the
next midnight UTC), and the value stamped day D is what the site shows during day D, so it
is out shortly after D 00:00. The lag covers the gap between the stamp and the real update
(the daily job, API caches); it is a setting, not a measurement: we cannot check when each
historical value was really first served. Set it to 24 hours for the most conservative
reading (a value known only once its day is over).

Scale: ``(value - 50) / 50``, so -1 is extreme fear, 0 neutral, +1 extreme greed; only the
newest visible value is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from news.sources.base import FeatureSource, SourceConfig, entries, number, unix_seconds

URL = "https://api.alternative.me/fng/"


class FearGreedConfig(SourceConfig):
    """Fear & Greed settings (the lag rule is in the module doc)."""

    limit: int = Field(0, ge=0)
    """How many days to fetch, newest first; 0 is the whole history."""


class FearGreed(FeatureSource):
    """alternative.me's Fear & Greed Index (see module doc)."""

    name: ClassVar[str] = "fear_greed"
    config_type: ClassVar[type[SourceConfig]] = FearGreedConfig
    config: FearGreedConfig

    @property
    def url(self) -> str:
        return f"{URL}?limit={self.config.limit}&format=json"

    def read_values(self, document: Mapping[str, Any]) -> pd.DataFrame:
        metadata = document.get("metadata")
        error = metadata.get("error") if isinstance(metadata, Mapping) else None
        if error:
            raise ValueError(f"{self.name}: the API reported an error: {error}")
        rows = []
        for i, entry in enumerate(entries(document, "data", self.name)):
            where = f"{self.name}: data[{i}]"
            for field in ("value", "timestamp"):
                if field not in entry:
                    raise ValueError(f"{where} has no {field!r}")
            value = number(entry["value"], f"{where} 'value'")
            if not 0 <= value <= 100:
                raise ValueError(f"{where} 'value' {value:g} is outside 0..100")
            rows.append((unix_seconds(entry["timestamp"], f"{where} 'timestamp'"), value))
        return pd.DataFrame(rows, columns=["time", "value"])

    def first_seen(self, time: pd.Series) -> pd.Series:
        return time + self.config.publication_lag

    def transform(self, history: np.ndarray) -> np.ndarray:
        return (history[-1] - 50.0) / 50.0
