"""Train / validation / test parts of a run's data: out of sample by construction.

A run's data is cut in time order into a training part, a validation part (model
selection: the best checkpoint, PBT's score, early ends) and a test part (left alone
for backtests), with ``gap_bars`` left out before each held-out part. Training
episodes read only training bars (``envs.registry``'s ``span``: an episode starts and
ends inside it), so no training reward depends on a held-out price. Held-out
observations still look back into earlier parts (a window, a day of z-scores): that
is the past, as it would be live. The resolved parts, with their exact first and last
timestamps, go into the run's manifest, and backtests refuse to run on a span that
overlaps the training or validation part unless told to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from envs.data import MarketArrays
from rl.config import SplitConfig

PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class Span:
    """Bars first..last (inclusive) of a MarketArrays."""

    first: int
    last: int

    def overlaps(self, other: Span) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Splits:
    """The resolved parts; a held-out part is None when its fraction is 0 and no date."""

    train: Span
    validation: Span | None
    test: Span | None

    def parts(self) -> dict[str, Span]:
        spans = (self.train, self.validation, self.test)
        return {k: v for k, v in zip(PARTS, spans, strict=True) if v is not None}


def _bar_at(data: MarketArrays, when: str) -> int:
    stamp = pd.Timestamp(when)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(np.searchsorted(data.timestamps, stamp.as_unit("ns").value))  # int64 ns


def resolve(data: MarketArrays, config: SplitConfig, window: int) -> Splits:
    """The parts of ``data`` (``window``: the observation window, whose first bars are
    not usable as decision points)."""
    low = max(data.first_valid, window - 1)
    high = data.n_bars - 1
    usable = high - low + 1
    gap = config.gap_bars

    def start(when: str | None, fraction: float, end: int) -> int | None:
        """A part's first bar: the given date, or ``fraction`` of the usable bars ending
        just before bar ``end``."""
        if when is not None:
            return _bar_at(data, when)
        return end - round(fraction * usable) if fraction > 0 else None

    test = start(config.test_start, config.test, high + 1)
    val_end = high + 1 if test is None else test - gap
    val = start(config.validation_start, config.validation, val_end)
    if val is not None and test is not None and val >= test - gap:
        raise ValueError("the validation part must end a gap before the test part starts")
    held_out = [p for p in (val, test) if p is not None]
    train_end = min(held_out) - gap - 1 if held_out else high
    if train_end - low < 0.1 * usable or train_end <= low:
        raise ValueError(
            f"the split leaves {max(train_end - low, 0)} of {usable} usable bars to train on; "
            "hold out less (split.validation / split.test) or give more data"
        )
    return Splits(
        train=Span(low, train_end),
        validation=None if val is None else Span(val, high if test is None else test - gap - 1),
        test=None if test is None else Span(test, high),
    )


def part_env_config(env_config: dict[str, Any], span: Span) -> dict[str, Any]:
    """``env_config`` with episodes confined to ``span``; a held-out part drops the
    training part's own start choices."""
    out = dict(env_config)
    if "span" in out:
        raise ValueError("env_config.span is set from the run's split (split.*): remove it")
    out["span"] = [span.first, span.last]
    return out


def held_out_env_config(env_config: dict[str, Any], span: Span) -> dict[str, Any]:
    """The env config of episodes in a held-out part: no training start range, and
    episodes shortened to fit the part when it is shorter than one (a small dataset's
    validation part may hold less than a training episode's day)."""
    from envs.config import EnvConfig

    base = {k: v for k, v in env_config.items() if k not in ("start_range", "start_fraction")}
    env = EnvConfig(**base.get("env", {}))
    fits = (span.last - span.first) // env.bars_per_step - 1
    if 0 < fits < env.episode_steps:
        base["env"] = {**base.get("env", {}), "episode_steps": fits}
    return part_env_config(base, span)


def run_splits(env_config: dict[str, Any], config: SplitConfig) -> tuple[Splits, MarketArrays]:
    """The parts of the data a run's env_config names, and that data."""
    from envs.config import EnvConfig
    from envs.registry import market_for

    data = market_for(env_config)
    return resolve(data, config, EnvConfig(**env_config.get("env", {})).window), data


def record(splits: Splits, data: MarketArrays) -> dict[str, Any]:
    """The parts with their bar indexes and exact first/last bar open times (UTC)."""
    stamp = lambda i: pd.Timestamp(data.timestamps[i], tz="UTC").isoformat()  # noqa: E731
    return {
        name: {
            "first_bar": span.first,
            "last_bar": span.last,
            "first": stamp(span.first),
            "last": stamp(span.last),
        }
        for name, span in splits.parts().items()
    }


def check_parts(config) -> Splits:
    """Resolve a TrainConfig's split and check that its train part, and its validation
    part when the run validates, each hold a whole episode (before Ray starts: a clear
    error, not a failure inside an EnvRunner)."""
    from envs.registry import episode_start_bounds

    splits, _ = run_splits(config.env_config, config.split)
    parts = {"train": part_env_config(config.env_config, splits.train)}
    if config.validates and splits.validation is not None:
        parts["validation"] = held_out_env_config(config.env_config, splits.validation)
    for name, env_config in parts.items():
        try:
            episode_start_bounds(env_config)
        except ValueError as err:
            raise ValueError(
                f"the {name} part of the split: {err} (or hold out less: split.validation, "
                "split.test)"
            ) from err
    return splits
