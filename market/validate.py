"""Validation of market series: corrupt data is worse than no data, so fail fast.

Every series is checked before it is written to the store and after it is read
back. A failure raises :class:`DataValidationError` naming the series, the rule
that failed, and the first offending timestamps, so the user can find the bad rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from market.schema import TIMESTAMP, Kind, columns_of, timeframe_ms


class DataValidationError(ValueError):
    """A market series breaks a rule of the data contract (see market/schema.py)."""


def _where(frame: pd.DataFrame, mask: np.ndarray, limit: int = 3) -> str:
    stamps = frame.index[mask][:limit]
    more = int(mask.sum()) - len(stamps)
    text = ", ".join(str(s) for s in stamps)
    return f"{text} (+{more} more)" if more > 0 else text


def validate_index(frame: pd.DataFrame, name: str) -> None:
    """The index must be a UTC DatetimeIndex named 'timestamp', strictly increasing."""
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise DataValidationError(f"{name}: index must be a tz-aware DatetimeIndex (UTC)")
    if str(index.tz) != "UTC":
        raise DataValidationError(f"{name}: index timezone is {index.tz}, expected UTC")
    if index.name != TIMESTAMP:
        raise DataValidationError(f"{name}: index must be named {TIMESTAMP!r}, got {index.name!r}")
    if len(index) < 2:
        return
    steps = np.diff(index.as_unit("ns").asi8)
    if (steps == 0).any():
        raise DataValidationError(
            f"{name}: duplicate timestamps at {_where(frame, np.r_[False, steps == 0])}"
        )
    if (steps < 0).any():
        raise DataValidationError(
            f"{name}: timestamps not sorted at {_where(frame, np.r_[False, steps < 0])}"
        )


def validate_series(
    frame: pd.DataFrame, kind: Kind, name: str, timeframe: str | None = None
) -> None:
    """Check one series of `kind` against the data contract; raise on the first broken rule.

    Bars must lie on the timeframe grid (a bar stamped 00:00:30 on a 1m timeframe
    means the source is misaligned). Gaps are allowed here (exchanges have
    maintenance windows); the loader applies the gap policy when aligning assets.
    """
    expected = list(columns_of(kind))
    if list(frame.columns) != expected:
        raise DataValidationError(f"{name}: columns {list(frame.columns)}, expected {expected}")
    validate_index(frame, name)
    values = frame.to_numpy(dtype="float64")
    finite = np.isfinite(values)
    if not finite.all():
        raise DataValidationError(
            f"{name}: NaN or inf values at {_where(frame, ~finite.all(axis=1))}"
        )
    if kind is Kind.FUNDING:
        return
    if timeframe is not None and len(frame):
        off_grid = frame.index.as_unit("ns").asi8 % (timeframe_ms(timeframe) * 1_000_000) != 0
        if off_grid.any():
            raise DataValidationError(
                f"{name}: timestamps off the {timeframe} grid at {_where(frame, off_grid)}"
            )
    o, h, low, c, v = (values[:, i] for i in range(5))
    checks = (
        ((o > 0) & (h > 0) & (low > 0) & (c > 0), "non-positive prices"),
        (h >= low, "high < low"),
        ((h >= np.maximum(o, c)) & (low <= np.minimum(o, c)), "open/close outside [low, high]"),
        (v >= 0, "negative volume"),
    )
    for ok, rule in checks:
        if not ok.all():
            raise DataValidationError(f"{name}: {rule} at {_where(frame, ~ok)}")
