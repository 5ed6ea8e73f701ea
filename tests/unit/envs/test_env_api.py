"""Gymnasium API conformance, determinism, pickling, autoreset and bad input."""

import pickle

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector.utils import batch_space

from envs.config import EnvConfig
from envs.single import PerpetualEnv
from envs.vector import PerpetualVectorEnv
from tests.unit.envs.market import action, random_market

CONFIG = EnvConfig(window=8, risk_window=4, episode_steps=50)


def rollout(env, seed, steps=60):
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [obs["market"].sum(), obs["portfolio"].sum()]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        trace += [reward, info["equity"], obs["risk"].sum()]
        if terminated or truncated:
            obs, _ = env.reset()
    return np.array(trace, dtype=np.float64)


def test_single_env_passes_gymnasium_check_env():
    env = PerpetualEnv(random_market(n_bars=400, n_assets=3), CONFIG)

    check_env(env, skip_render_check=True)


def test_vector_env_spaces_are_the_batched_single_spaces():
    env = PerpetualVectorEnv(random_market(n_bars=400, n_assets=3), CONFIG, num_envs=5)

    obs, _ = env.reset(seed=1)

    assert env.observation_space == batch_space(env.single_observation_space, 5)
    assert env.observation_space.contains(obs)
    assert env.action_space.contains(env.action_space.sample())


def test_same_seed_gives_the_identical_rollout_and_another_seed_does_not():
    data = random_market(n_bars=600, n_assets=3)

    first = rollout(PerpetualEnv(data, CONFIG), seed=3)
    again = rollout(PerpetualEnv(data, CONFIG), seed=3)
    other = rollout(PerpetualEnv(data, CONFIG), seed=4)

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_env_survives_pickle_mid_episode_and_continues_identically():
    env = PerpetualEnv(random_market(n_bars=400, n_assets=2), CONFIG)
    env.reset(seed=5)
    env.step(action(n_assets=2, trade=2, size=0.3))

    clone = pickle.loads(pickle.dumps(env))
    a = env.step(action(n_assets=2, trade=0, size=0.5))
    b = clone.step(action(n_assets=2, trade=0, size=0.5))

    np.testing.assert_array_equal(a[0]["portfolio"], b[0]["portfolio"])
    assert a[1] == b[1]
    assert env.account() == clone.account()


def test_vector_env_autoresets_on_the_next_step_with_reward_zero():
    config = EnvConfig(window=8, risk_window=4, episode_steps=3)
    env = PerpetualVectorEnv(random_market(n_bars=400, n_assets=1), config, num_envs=2)
    env.reset(seed=0)
    hold = {k: np.stack([v, v]) for k, v in action(trade=2, size=0.5).items()}
    for _ in range(2):
        env.step(hold)

    _, _, _, truncated, _ = env.step(hold)
    obs, reward, terminated, truncated_after, info = env.step(hold)

    assert truncated.all()
    assert (reward == 0.0).all() and not terminated.any() and not truncated_after.any()
    assert (info["equity"] == config.initial_balance).all()
    assert (obs["portfolio"] == 0.0).all()
    assert env.finished_ledger(0) is not None and len(env.finished_ledger(0)) > 0


def test_episodes_start_at_different_bars_within_the_usable_span():
    data = random_market(n_bars=2000, n_assets=1)
    env = PerpetualVectorEnv(data, CONFIG, num_envs=64)

    _, info = env.reset(seed=0)

    starts = info["bar"]
    assert len(np.unique(starts)) > 40
    assert starts.min() >= CONFIG.window - 1
    assert starts.max() <= data.n_bars - 1 - CONFIG.episode_steps


def test_truncates_at_the_end_of_the_data():
    data = random_market(n_bars=100, n_assets=1)
    env = PerpetualEnv(data, EnvConfig(window=8, risk_window=4, episode_steps=10_000))
    env.reset(options={"start": 90})
    flat = action(trade=1)

    results = [env.step(flat) for _ in range(9)]

    assert [r[3] for r in results] == [False] * 8 + [True]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(flat)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trade": np.array([3])}, "trade"),
        ({"trade": np.array([1.5])}, "trade"),
        ({"size": np.array([np.nan], dtype=np.float32)}, "NaN"),
        ({"size": np.array([1.2], dtype=np.float32)}, r"\[0, 1\]"),
        ({"risk": np.array([-0.1, 0.5], dtype=np.float32)}, r"\[0, 1\]"),
        ({"execution": np.array([5, 0])}, "execution"),
        ({"execution": np.array([0, 99])}, "execution"),
        ({"risk": np.array([[0.1, 0.5]], dtype=np.float32)}, "shape"),
        ({"size": np.array([0.5, 0.5], dtype=np.float32)}, "shape"),
    ],
)
def test_bad_actions_raise_clear_errors(change, message):
    env = PerpetualEnv(random_market(n_bars=200, n_assets=1), CONFIG)
    env.reset(seed=0)

    with pytest.raises(ValueError, match=message):
        env.step({**action(), **change})


def test_missing_action_key_and_non_dict_action_raise():
    env = PerpetualEnv(random_market(n_bars=200, n_assets=1), CONFIG)
    env.reset(seed=0)
    partial = action()
    del partial["risk"]

    with pytest.raises(ValueError, match="dict"):
        env.step(partial)
    with pytest.raises(ValueError, match="dict"):
        env.step(np.zeros(4))


def test_too_short_data_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="too short"):
        PerpetualEnv(random_market(n_bars=8, n_assets=1), CONFIG)


def test_flat_variant_maps_signed_exposure_and_passes_check_env():
    from envs.flat import make_flat_env

    env = make_flat_env(PerpetualEnv(random_market(n_bars=400, n_assets=3), CONFIG))
    check_env(env, skip_render_check=True)
    env.reset(seed=0)

    obs, *_ = env.step(np.array([0.5, -0.25, 0.0], dtype=np.float32))

    positions = env.unwrapped.positions()
    assert positions[0] > 0 and positions[1] < 0 and positions[2] == 0
    assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        env.step(np.array([1.5, 0.0, 0.0], dtype=np.float32))
