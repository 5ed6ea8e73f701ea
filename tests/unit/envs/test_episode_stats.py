"""info["trading"]: the per-episode trading statistics agree with the account and ledger."""

import numpy as np
import pytest

from envs.config import EnvConfig
from envs.episode_stats import steps_per_year
from envs.registry import make_env
from envs.single import PerpetualEnv
from envs.vector import PerpetualVectorEnv
from tests.unit.envs.market import random_market

CONFIG = EnvConfig(window=8, risk_window=4, episode_steps=40)


def _run_to_end(env):
    env.action_space.seed(0)
    equity, turnover, rewards = [CONFIG.initial_balance], 0.0, 0.0
    while True:
        _obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        equity.append(info["equity"])
        turnover += info["reward_turnover"]
        rewards += reward
        if terminated or truncated:
            return info, np.array(equity), turnover, rewards


def test_single_env_reports_episode_statistics_only_at_the_end():
    env = PerpetualEnv(random_market(seed=1), CONFIG)
    env.reset(seed=2)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert "trading" not in info

    env.reset(seed=2)
    final, equity, turnover, rewards = _run_to_end(env)
    stats = final["trading"]
    account = env.account()
    ledger = env.ledger()

    assert stats["return"] == pytest.approx(final["equity"] / CONFIG.initial_balance - 1)
    assert stats["fees"] == pytest.approx(account["fees"] + account["liquidation_fees"])
    assert stats["funding"] == pytest.approx(account["funding"])
    assert stats["fees"] == pytest.approx(ledger["fee"].sum())
    assert stats["length"] == len(equity) - 1
    assert stats["turnover"] == pytest.approx(turnover)
    assert stats["reward"] == pytest.approx(rewards)
    # equity is marked each bar and peaks are tracked per bar: at least the per-step drawdown
    step_drawdown = np.max(1.0 - equity / np.maximum.accumulate(equity))
    assert stats["max_drawdown"] >= step_drawdown - 1e-12
    assert 0.0 <= stats["max_drawdown"] < 1.0
    assert stats["reward_log_return"] == pytest.approx(np.log1p(stats["return"]), abs=1e-9)


def test_vector_env_masks_episode_statistics_to_the_envs_that_finished():
    env = PerpetualVectorEnv(random_market(seed=1), CONFIG, num_envs=4)
    env.reset(seed=0, options={"start": [100, 100, 100, 100]})
    env.action_space.seed(1)
    for _ in range(CONFIG.episode_steps):
        _, _rewards, terminated, truncated, info = env.step(env.action_space.sample())
        finished = terminated | truncated
        assert ("trading" in info) == finished.any()
        if finished.any():
            break
    np.testing.assert_array_equal(info["_trading"], finished)
    np.testing.assert_allclose(
        info["trading"]["return"][finished], info["equity"][finished] / 1e6 - 1.0
    )


def test_sharpe_is_annualised_from_the_bar_spacing():
    env = make_env({"synthetic_days": 4, "env": {"episode_steps": 30, "bars_per_step": 5}})
    minutes_per_year = 365.25 * 24 * 60
    assert steps_per_year(env.unwrapped._vec.data.timestamps, 5) == pytest.approx(
        minutes_per_year / 5
    )
