"""What a market-wide feature source is, and how its observations reach the bars without
look-ahead.

An observation is one published value: ``time`` (UTC) is the period it describes,
``first_seen`` (UTC) the moment it could first be known, by the source's own publication
rule (for a daily value: the start or the end of its day plus a configurable lag), and the
value columns. ``first_seen`` plays the role the collector's clock plays for headlines:
alignment makes an observation visible from the first bar that closes strictly after it
(``news.align.visible_bars``), never from ``time``.

The feature at bar t is computed from the observations visible at t and nothing else: the
newest of them by ``time`` and, for sources whose scale needs history (a log-change against
a trailing mean), the ones just before it that are visible too. So a value published later,
a revision, or a back-filled gap cannot change any bar before it became visible.
"""

from __future__ import annotations

import bisect
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from news.align import visible_bars

TIME_COLUMNS = ("time", "first_seen")
"""The columns every observation frame starts with; the source's value columns follow."""

Transform = Callable[[np.ndarray], np.ndarray]
"""Maps the newest visible observations, (m, k) oldest first (m <= the source's window),
to the k features of the newest one."""


class SourceConfig(BaseModel):
    """Settings every source has; a source adds its own in a subclass."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    publication_lag: timedelta = timedelta(hours=1)
    """Added to the source's publication rule: how long after the nominal publication
    moment we assume the value was really out (API caches, late jobs)."""
    timeout_s: float = Field(30.0, gt=0)
    """Seconds to wait for the API's response when fetching."""

    @field_validator("publication_lag")
    @classmethod
    def _not_negative(cls, lag: timedelta) -> timedelta:
        if lag < timedelta(0):
            raise ValueError("publication_lag cannot be negative (that would be look-ahead)")
        return lag


class FeatureSource(ABC):
    """One market-wide series: where to fetch it, how to read a payload into observations,
    when each value becomes known, and how it is scaled for the model.

    A subclass sets ``name``, ``value_columns`` and ``config_type``, implements ``url``,
    ``read_values``, ``first_seen`` and ``transform``, and overrides ``window`` when its
    scale reads more than the newest value."""

    name: ClassVar[str]
    """Registry key, store directory (``source=<name>``) and feature prefix."""
    value_columns: ClassVar[tuple[str, ...]] = ("value",)
    """The stored columns after TIME_COLUMNS; one feature per column."""
    config_type: ClassVar[type[SourceConfig]] = SourceConfig

    def __init__(self, config: SourceConfig | None = None) -> None:
        config = self.config_type() if config is None else config
        if not isinstance(config, self.config_type):
            raise TypeError(f"{self.name} takes a {self.config_type.__name__}, "
                            f"not a {type(config).__name__}")
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    @property
    def window(self) -> int:
        """How many of the newest visible observations ``transform`` reads (1: the newest)."""
        return 1

    @property
    def feature_names(self) -> tuple[str, ...]:
        """``src_<name>`` for a one-column source, ``src_<name>_<column>`` otherwise."""
        if len(self.value_columns) == 1:
            return (f"src_{self.name}",)
        return tuple(f"src_{self.name}_{column}" for column in self.value_columns)

    @property
    @abstractmethod
    def url(self) -> str:
        """The API address a fetch reads."""

    @abstractmethod
    def read_values(self, document: Mapping[str, Any]) -> pd.DataFrame:
        """The payload's observations as ``time`` (UTC) and the value columns, in any order.

        Raises ValueError naming the problem for a payload that does not have the
        documented shape (missing fields, non-numeric values, an error status)."""

    @abstractmethod
    def first_seen(self, time: pd.Series) -> pd.Series:
        """When each value stamped ``time`` could first be known (the publication rule)."""

    @abstractmethod
    def transform(self, history: np.ndarray) -> np.ndarray:
        """See Transform: the model-scale features of the newest row of ``history``."""

    def parse(self, payload: bytes | str | Mapping[str, Any]) -> pd.DataFrame:
        """Observations (TIME_COLUMNS + value columns, sorted by time) from an API payload:
        raw JSON bytes or text, or the decoded object.

        Raises ValueError naming the source and the problem; nothing is half-read."""
        values = self.read_values(load_document(payload, self.name))
        if values.empty:
            raise ValueError(f"{self.name}: the payload holds no observations")
        time = pd.Series(pd.to_datetime(values["time"], utc=True), name="time")
        duplicated = time[time.duplicated()]
        if not duplicated.empty:
            raise ValueError(f"{self.name}: the payload lists {duplicated.iloc[0]} twice")
        frame = pd.DataFrame({"time": time, "first_seen": self.first_seen(time)})
        for column in self.value_columns:
            frame[column] = values[column].astype(np.float64).to_numpy()
        return frame.sort_values("time", kind="stable").reset_index(drop=True)

    def features(self, observations: pd.DataFrame, bar_close: pd.DatetimeIndex) -> np.ndarray:
        """(T, k) float32 features of ``observations`` at bars closing at ``bar_close``."""
        return align_source(observations, bar_close, self.value_columns, self.transform,
                            self.window)


def load_document(payload: bytes | str | Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The decoded JSON object of a payload; ValueError (naming ``name``) when the text is
    not JSON, is cut short, or is not an object."""
    if isinstance(payload, Mapping):
        return payload
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{name}: the payload is not valid JSON ({exc}); a cut-short "
                         "download or an HTML error page?") from exc
    if not isinstance(document, dict):
        raise ValueError(f"{name}: the payload is a JSON {type(document).__name__}, "
                         "expected an object")
    return document


def number(value: Any, where: str) -> float:
    """A finite float from a JSON number or numeric string, else ValueError naming where."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{where} is not a number ({value!r})")
    try:
        result = float(value)
    except ValueError as exc:
        raise ValueError(f"{where} is not a number ({value!r})") from exc
    if not math.isfinite(result):
        raise ValueError(f"{where} is not finite ({value!r})")
    return result


def unix_seconds(value: Any, where: str) -> pd.Timestamp:
    """A UTC time from whole Unix seconds (number or numeric string), else ValueError."""
    seconds = number(value, where)
    if seconds != int(seconds) or seconds < 0:
        raise ValueError(f"{where} is not whole Unix seconds ({value!r})")
    return pd.Timestamp(int(seconds), unit="s", tz="UTC")


def entries(document: Mapping[str, Any], key: str, name: str) -> list[Mapping[str, Any]]:
    """The list of objects under ``key``; ValueError when missing or not a list of objects."""
    found = document.get(key)
    if not isinstance(found, list):
        raise ValueError(f"{name}: the payload has no {key!r} list")
    for i, item in enumerate(found):
        if not isinstance(item, Mapping):
            raise ValueError(f"{name}: {key}[{i}] is not an object ({item!r})")
    return found


def align_source(observations: pd.DataFrame, bar_close: pd.DatetimeIndex,
                 columns: Sequence[str], transform: Transform | None = None,
                 window: int = 1) -> np.ndarray:
    """(T, len(columns)) float32: at each bar, ``transform`` of the newest observations
    visible there (by ``time``, at most ``window`` of them, oldest first); the identity on
    the newest one when ``transform`` is None. 0 before the first visible observation and
    where a transform gives a non-finite number.

    An observation is visible from the first bar closing strictly after its
    ``first_seen``. The features change only at bars where an observation becomes
    visible; each is computed from the set visible at that bar, so observations visible
    only later (late values, back-filled gaps) never reach an earlier bar."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    closes = _close_ns(bar_close)
    n_bars = len(closes)
    out = np.zeros((n_bars, len(columns)), np.float32)
    if observations.empty or n_bars == 0:
        return out
    ordered = observations.sort_values("time", kind="stable").reset_index(drop=True)
    seen = pd.DatetimeIndex(pd.to_datetime(ordered["first_seen"], utc=True))
    visible = visible_bars(seen.as_unit("ns").asi8, closes)
    values = ordered[list(columns)].to_numpy(np.float64)
    pick = transform or _newest
    event_bars: list[int] = []
    event_values: list[np.ndarray] = []
    present: list[int] = []  # time ranks of the visible observations, ascending
    for rank in np.lexsort((np.arange(len(visible)), visible)):
        bar = int(visible[rank])
        if bar >= n_bars:
            break
        bisect.insort(present, int(rank))
        features = np.asarray(pick(values[present[-window:]]), np.float64)
        if event_bars and event_bars[-1] == bar:
            event_values[-1] = features
        else:
            event_bars.append(bar)
            event_values.append(features)
    if not event_bars:
        return out
    latest = np.searchsorted(np.asarray(event_bars), np.arange(n_bars), side="right") - 1
    known = latest >= 0
    table = np.nan_to_num(np.vstack(event_values), nan=0.0, posinf=0.0, neginf=0.0)
    out[known] = table[latest[known]]
    return out


def _newest(history: np.ndarray) -> np.ndarray:
    return history[-1]


def _close_ns(bar_close: pd.DatetimeIndex) -> np.ndarray:
    index = pd.DatetimeIndex(bar_close)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    closes = index.as_unit("ns").asi8
    if np.any(np.diff(closes) <= 0):
        raise ValueError("bar close times must increase")
    return closes
