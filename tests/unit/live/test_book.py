"""The paper book, fed bars one at a time with arrays built from past bars only, equals the
backtest of the same span on the same policy: ledger, equity and every observation."""

import numpy as np
import pandas as pd
import pytest

from backtest.engine import backtest_config, run_policy, span_steps
from envs.account import Account
from envs.config import EnvConfig
from envs.data import MarketArrays
from envs.spaces import action_space
from live.book import PaperBook, flat_action
from live.feed import arrays_upto
from market.synthetic import SyntheticConfig, generate_market

START, END = 1600, 2200


@pytest.fixture(scope="module")
def frame():
    return generate_market(SyntheticConfig(days=2, seed=5)).aligned()


def _policy(config, n_assets, seen):
    space = action_space(config, n_assets)
    space.seed(0)

    def act(obs):
        seen.append({k: v.copy() for k, v in obs.items()})
        return {k: np.asarray(v)[None] for k, v in space.sample().items()}

    return act


def _replay(frame, config, policy, n_steps):
    book = PaperBook(config, Account.fresh(arrays_upto(frame, START), config.initial_balance,
                                           config.risk_window, START))
    book.decide(arrays_upto(frame, START), policy)
    ledgers, steps = [], []
    for b in range(START + 1, START + n_steps * config.bars_per_step + 1):
        data = arrays_upto(frame, b)
        decide = book.steps_done + 1 < n_steps
        result = book.on_bar(data, int(data.timestamps[b]), policy if decide else None)
        ledgers.append(result.ledger)
        if result.step is not None:
            steps.append(result.step)
        if result.ended:
            break
    return book, pd.concat(ledgers, ignore_index=True), np.array(steps)


@pytest.mark.parametrize("bars_per_step", [1, 5])
def test_a_book_fed_bar_by_bar_equals_the_backtest_bit_for_bit(frame, bars_per_step):
    full = MarketArrays.from_aligned(frame)
    config = EnvConfig(bars_per_step=bars_per_step)
    n_steps = span_steps(full, config, START, END)
    seen_backtest, seen_live = [], []
    backtest = run_policy(_policy(config, full.n_assets, seen_backtest), full, config, START,
                          END, "p")
    _, ledger, steps = _replay(frame, backtest_config(config, n_steps),
                               _policy(config, full.n_assets, seen_live), n_steps)

    assert len(steps) == len(backtest.steps) - 1 == n_steps
    np.testing.assert_array_equal(steps[:, 0], backtest.steps["equity"].to_numpy()[1:])
    np.testing.assert_array_equal(steps[:, 8:], backtest.positions.to_numpy()[1:])
    assert len(ledger) > 10
    pd.testing.assert_frame_equal(ledger, backtest.ledger, check_dtype=False)
    assert len(seen_live) == len(seen_backtest) == n_steps
    for live, back in zip(seen_live, seen_backtest, strict=True):
        for part in back:
            np.testing.assert_array_equal(live[part], back[part])


def test_the_kill_switch_action_flattens_through_the_execution_model(frame):
    config = backtest_config(EnvConfig(bars_per_step=1), 100)
    data = arrays_upto(frame, START)
    book = PaperBook(config, Account.fresh(data, config.initial_balance, config.risk_window,
                                           START))
    long_all = {"trade": np.full((1, data.n_assets), 2), "size": np.ones((1, data.n_assets)),
                "risk": np.full((1, 2 * data.n_assets), 0.5),
                "execution": np.zeros((1, 2 * data.n_assets), np.int64)}
    book.decide(data, lambda obs: long_all)
    book.on_bar(arrays_upto(frame, START + 1), int(frame.index.asi8[START + 1]), None)
    assert not book.is_flat()
    book.flatten_only = True
    book.decide(arrays_upto(frame, START + 1), lambda obs: pytest.fail("policy asked"))
    result = book.on_bar(arrays_upto(frame, START + 2), int(frame.index.asi8[START + 2]), None)
    assert book.is_flat()
    closes = result.ledger[result.ledger["kind"] == "fill"]
    assert len(closes) == data.n_assets and (closes["fee"] > 0).all()
    assert flat_action(3)["trade"].tolist() == [[1, 1, 1]]


def test_a_bar_out_of_order_is_refused(frame):
    config = backtest_config(EnvConfig(), 10)
    data = arrays_upto(frame, START + 5)
    book = PaperBook(config, Account.fresh(data, config.initial_balance, config.risk_window,
                                           START))
    with pytest.raises(ValueError, match="not the bar after"):
        book.on_bar(data, int(data.timestamps[START + 2]), None)
