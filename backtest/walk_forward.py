"""Walk-forward validation: train on a window, test on the next, slide, repeat.

Windows (bar indices, inclusive), for window k:

    train [train_start_k, train_end_k] | purge gap | test [test_start_k, test_end_k] | embargo

- ``rolling``: the train window has a fixed length and slides with the tests;
  ``anchored``: it always starts at the first usable bar and grows.
- ``purge_bars`` lie between a train window and its test: no training episode starts
  within ``episode_steps`` of the train end, so no training episode reads the test, and
  the test's first observation window (its past) is not training data either.
- ``embargo_bars`` follow each test window before the next test starts, so two
  out-of-sample tests never share the market moves right at their boundary (serial
  correlation) and the stitched result is not made of adjacent, dependent pieces.

Each window trains a fresh policy with ``rl.train`` (episode starts limited to the
train window through ``start_range``), then backtests its final checkpoint on the test
window. The stitched out-of-sample result chains the test windows' returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from backtest.result import STEP_COLUMNS, BacktestResult


class WalkForwardConfig(BaseModel):
    """Window layout and the training budget per window."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    train_bars: int = Field(43_200, ge=2, description="Bars per train window (30 days of 1m).")
    test_bars: int = Field(10_080, ge=2, description="Bars per test window (7 days of 1m).")
    purge_bars: int = Field(60, ge=0, description="Bars skipped between train and test.")
    embargo_bars: int = Field(0, ge=0, description="Bars skipped after each test window.")
    anchored: bool = Field(False, description="Grow the train window from the first bar.")
    max_windows: int | None = Field(None, ge=1, description="Stop after this many windows.")
    train_steps: int = Field(100_000, ge=1, description="Env steps of training per window.")

    @model_validator(mode="after")
    def _check(self) -> WalkForwardConfig:
        if self.purge_bars < 0 or self.test_bars < 2:
            raise ValueError("purge_bars >= 0 and test_bars >= 2")
        return self


@dataclass(frozen=True)
class Window:
    index: int
    train: tuple[int, int]
    test: tuple[int, int]


def make_windows(first: int, last: int, config: WalkForwardConfig) -> list[Window]:
    """Windows that fit in [first, last] (see module docstring)."""
    windows: list[Window] = []
    test_start = first + config.train_bars + config.purge_bars
    while test_start + config.test_bars - 1 <= last:
        train_end = test_start - config.purge_bars - 1
        train_start = first if config.anchored else train_end - config.train_bars + 1
        test_end = test_start + config.test_bars - 1
        windows.append(Window(len(windows), (train_start, train_end), (test_start, test_end)))
        if config.max_windows is not None and len(windows) >= config.max_windows:
            break
        test_start = test_end + 1 + config.embargo_bars
    if not windows:
        need = config.train_bars + config.purge_bars + config.test_bars
        raise ValueError(
            f"walk-forward needs at least {need} usable bars (train + purge + test); "
            f"the span has {last - first + 1}"
        )
    return windows


def train_starts(window: Window, episode_steps: int, bars_per_step: int) -> tuple[int, int]:
    """Episode start bars for training in a window: every episode ends by the train end."""
    lo, hi = window.train
    last = hi - episode_steps * bars_per_step
    if last < lo:
        raise ValueError(
            f"train window {window.train} is shorter than one episode "
            f"({episode_steps} steps x {bars_per_step} bars): lengthen train_bars or shorten "
            "env.episode_steps"
        )
    return lo, last


def stitch(results: list[BacktestResult], name: str) -> BacktestResult:
    """Chain test windows into one out-of-sample result: each window's returns compound on
    the equity the previous window ended with; cost columns accumulate across windows."""
    if not results:
        raise ValueError("nothing to stitch")
    first = results[0]
    equity, frames, positions, prices, ledgers = first.initial_capital, [], [], [], []
    offsets = dict.fromkeys(("fees", "funding", "impact", "spread"), 0.0)
    for k, res in enumerate(results):
        steps = res.steps.copy()
        scale = equity / res.initial_capital
        for column in ("equity", "gross_notional", "traded_notional"):
            steps[column] = steps[column] * scale
        for column in offsets:
            steps[column] = steps[column] * scale + offsets[column]
        keep = slice(None) if k == 0 else slice(1, None)  # a window's row 0 = previous end
        frames.append(steps.iloc[keep])
        positions.append(res.positions.iloc[keep] * scale)
        prices.append(res.prices.iloc[keep])
        ledgers.append(_window_ledger(res.ledger, k))
        equity = float(steps["equity"].iloc[-1])
        offsets = {column: float(steps[column].iloc[-1]) for column in offsets}
    steps = pd.concat(frames)[list(STEP_COLUMNS)]
    ledger = pd.concat(ledgers, ignore_index=True) if ledgers else first.ledger
    return BacktestResult(
        name=name, assets=first.assets, steps=steps, positions=pd.concat(positions),
        prices=pd.concat(prices), ledger=ledger, initial_capital=first.initial_capital,
        periods_per_year=first.periods_per_year, risk_free_rate=first.risk_free_rate,
        ended_early=next((r.ended_early for r in results if r.ended_early), None),
        meta={"windows": len(results), "ledger_assets": "asset#window (separate accounts)"},
    )


def _window_ledger(ledger: pd.DataFrame, k: int) -> pd.DataFrame:
    """A window's ledger tagged with its window. Each window is a separate account that
    starts flat and may end holding positions, so its trades are tracked under their own
    asset key ('BTC#1'): chaining them would merge one account's open position with the
    next account's first fill."""
    tagged = ledger.assign(window=k)
    tagged["asset"] = [f"{a}#{k}" if a else a for a in tagged["asset"]]
    return tagged


def window_table(windows: list[Window], results: list[BacktestResult], timestamps: np.ndarray,
                 metrics: list[dict[str, float]]) -> pd.DataFrame:
    """One row per window: its spans (UTC) and its test metrics."""

    def ts(bar: int) -> pd.Timestamp:
        return pd.Timestamp(timestamps[bar], tz="UTC")

    rows = []
    for w, res, m in zip(windows, results, metrics, strict=True):
        rows.append(
            {
                "window": w.index,
                "train_start": ts(w.train[0]), "train_end": ts(w.train[1]),
                "test_start": ts(w.test[0]), "test_end": ts(w.test[1]),
                "total_return": m["total_return"], "sharpe": m["sharpe"],
                "max_drawdown": m["max_drawdown"], "ended_early": res.ended_early or "",
            }
        )
    return pd.DataFrame(rows)


def _train_and_test(trained_config, data, env_config, window: Window, config, out: Path):
    """One window: train on its training bars, then run the policy on its test bars."""
    from backtest.run import run_module
    from rl.checkpoint import load_module
    from rl.train import train

    starts = train_starts(window, env_config.episode_steps, env_config.bars_per_step)
    cfg = trained_config.model_copy(
        update={
            "env_config": {**trained_config.env_config, "start_range": list(starts)},
            "steps": config.train_steps,
            # the windows are the split here: the run-level split and validation are off
            "split": trained_config.split.model_copy(update={"validation": 0.0, "test": 0.0}),
            "validation": trained_config.validation.model_copy(update={"every": 0}),
        }
    )
    trained = train(cfg, out / f"window_{window.index:02d}")
    module = load_module(trained.checkpoint)
    return run_module(module, data, env_config, *window.test, name=f"window_{window.index}",
                      meta={"train": window.train, "test": window.test})


def run_walk_forward(trained_config, data, env_config, span: tuple[int, int],
                     config: WalkForwardConfig, out: Path, on_window=None):
    """Train and test every window; returns (windows, per-window results, stitched).

    Windows run as Ray tasks of one CPU each, side by side as far as the cluster's CPUs
    allow (a local instance, or the cluster ``RAY_ADDRESS`` names); ``on_window`` hears
    of each as it finishes. ``trained_config`` is the TrainConfig each window trains
    with (its env_config gets the window's start_range and its steps the per-window
    budget).
    """
    import ray

    from cluster.runtime import init_ray

    windows = make_windows(span[0], span[1], config)
    init_ray()
    task = ray.remote(num_cpus=1, max_retries=0)(_train_and_test)
    shared = ray.put(data)
    refs = [task.remote(trained_config, shared, env_config, w, config, out) for w in windows]
    index = {ref: k for k, ref in enumerate(refs)}
    results: list[BacktestResult | None] = [None] * len(windows)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        k = index[done[0]]
        results[k] = ray.get(done[0])
        if on_window is not None:
            on_window(windows[k], results[k])
    return windows, results, stitch(results, "walk_forward_oos")
