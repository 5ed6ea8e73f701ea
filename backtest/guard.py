"""Is a backtest out of sample? The model's manifest says what it trained and was selected on.

A run's manifest records its split (rl.splits): the exact first and last bars of its
training and validation parts. A backtest of that model on the same market (the same
venue and symbols, or the same synthetic seed) over a span that overlaps either part
is in sample: its numbers say how well the model fits what it saw or was chosen on,
not how it trades. ``check`` finds such overlaps; the CLI and ``/v1/backtests`` refuse
them unless told ``allow_in_sample``, and the report then marks every metric.
A model evaluated on another market (another venue, another synthetic seed) is out of
sample whatever the dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from envs.market_spec import MarketSpec

GUARDED = ("train", "validation")
"""The parts a backtest must not overlap (the test part is what backtests are for)."""


class InSampleError(ValueError):
    """A backtest span overlaps the data the model was trained or selected on."""


@dataclass(frozen=True)
class SampleCheck:
    """What a backtest span is, relative to the model's data."""

    in_sample: bool
    overlaps: dict[str, tuple[str, str]]
    """Each guarded part of the model the span overlaps: (first, last) bar times."""
    span: tuple[str, str]
    """The backtest's first and last bar times."""
    note: str
    """One line for the report's top: in or out of sample, and why."""


def same_market(manifest: dict[str, Any] | None, market: MarketSpec) -> bool:
    """Whether ``market`` is the market the model's run trained on."""
    if manifest is None:
        return False
    return MarketSpec.of(manifest["config"]["env_config"]).identity() == market.identity()


def _stamp(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def check(
    manifest: dict[str, Any] | None,
    market: MarketSpec,
    first: Any,
    last: Any,
) -> SampleCheck:
    """Where the backtest span [first, last] on ``market`` lies relative
    to the model's training and validation parts (module docstring)."""
    span = (_stamp(first).isoformat(), _stamp(last).isoformat())
    if manifest is None:
        return SampleCheck(False, {}, span, "unknown: no manifest.json beside the model")
    if not same_market(manifest, market):
        note = "out of sample: another market than the model trained on"
        return SampleCheck(False, {}, span, note)
    splits = manifest.get("splits")
    if not splits:
        note = "in sample: the model's manifest records no split, so all its data was training"
        return SampleCheck(True, {"train": ("unknown", "unknown")}, span, note)
    overlaps = {
        part: (splits[part]["first"], splits[part]["last"])
        for part in GUARDED
        if part in splits
        and _stamp(splits[part]["first"]) <= _stamp(last)
        and _stamp(first) <= _stamp(splits[part]["last"])
    }
    if overlaps:
        parts = ", ".join(f"{p} {a} .. {b}" for p, (a, b) in overlaps.items())
        return SampleCheck(True, overlaps, span, f"IN SAMPLE: overlaps the model's {parts}")
    return SampleCheck(False, {}, span, "out of sample: after the model's training and validation")


def enforce(result: SampleCheck, allow_in_sample: bool) -> SampleCheck:
    """Refuse an in-sample span (InSampleError naming both spans) unless allowed."""
    if result.in_sample and not allow_in_sample:
        parts = "; ".join(f"{p} {a} .. {b}" for p, (a, b) in result.overlaps.items())
        raise InSampleError(
            f"the backtest span {result.span[0]} .. {result.span[1]} overlaps the model's "
            f"{parts}: its results would be in sample. Backtest the test part (the default), "
            "pick a later --start, or pass --allow-in-sample to run it anyway (every metric "
            "is then marked in-sample)"
        )
    return result
