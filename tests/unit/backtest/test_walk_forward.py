"""Walk-forward windows, purge and embargo, training spans, and stitching test windows."""

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backtest.result import STEP_COLUMNS, BacktestResult
from backtest.walk_forward import (
    WalkForwardConfig,
    Window,
    make_windows,
    stitch,
    train_starts,
)


@given(
    train=st.integers(10, 500),
    test=st.integers(2, 200),
    purge=st.integers(0, 50),
    embargo=st.integers(0, 50),
    anchored=st.booleans(),
    span=st.integers(0, 3000),
)
def test_windows_never_overlap_and_keep_purge_and_embargo(
    train, test, purge, embargo, anchored, span
):
    config = WalkForwardConfig(train_bars=train, test_bars=test, purge_bars=purge,
                               embargo_bars=embargo, anchored=anchored)
    first, last = 100, 100 + train + purge + test + span

    windows = make_windows(first, last, config)

    for w in windows:
        assert w.train[0] >= first and w.test[1] <= last
        assert w.test[0] - w.train[1] - 1 == purge  # exactly the purge gap, train before test
        assert w.test[1] - w.test[0] + 1 == test
        assert w.train[0] == first if anchored else w.train[1] - w.train[0] + 1 == train
    for before, after in itertools.pairwise(windows):
        assert after.test[0] - before.test[1] - 1 == embargo
    # no room for another window after the last one
    assert windows[-1].test[1] + 1 + embargo + test - 1 > last


def test_too_short_a_span_names_what_it_needs():
    config = WalkForwardConfig(train_bars=1000, test_bars=100, purge_bars=10)
    with pytest.raises(ValueError, match="1110 usable bars"):
        make_windows(0, 500, config)


def test_training_episodes_end_before_the_train_window_does():
    window = Window(0, (100, 1099), (1160, 1759))

    lo, hi = train_starts(window, episode_steps=200, bars_per_step=2)

    assert lo == 100 and hi + 200 * 2 == 1099
    with pytest.raises(ValueError, match="shorter than one episode"):
        train_starts(window, episode_steps=600, bars_per_step=2)


def _result(start: str, equity: list[float], fees: list[float]) -> BacktestResult:
    index = pd.date_range(start, periods=len(equity), freq="min", tz="UTC")
    steps = pd.DataFrame(0.0, index=index, columns=list(STEP_COLUMNS))
    steps["equity"] = equity
    steps["fees"] = fees
    frame = pd.DataFrame({"BTC": np.ones(len(equity))}, index=index)
    ledger = pd.DataFrame({"asset": ["BTC"], "kind": ["fill"]})
    return BacktestResult("w", ("BTC",), steps, frame * 0, frame, ledger, 100.0, 525_600.0)


def test_stitching_compounds_windows_and_accumulates_costs():
    first = _result("2024-01-01 00:00", [100, 110, 121], [0, 1, 2])
    second = _result("2024-01-01 01:00", [100, 90, 99], [0, 1, 1])

    stitched = stitch([first, second], "oos")

    np.testing.assert_allclose(stitched.equity, [100, 110, 121, 108.9, 119.79])
    np.testing.assert_allclose(stitched.steps["fees"], [0, 1, 2, 2 + 1.21, 2 + 1.21])
    assert stitched.returns.add(1).prod() == pytest.approx(1.1 * 1.1 * 0.9 * 1.1)
    assert list(stitched.ledger["asset"]) == ["BTC#0", "BTC#1"]  # separate accounts
