"""VectorEnvRunner (batched sampling) yields the same episodes as RLlib's own runner."""

import numpy as np
import pytest
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from rl.algo import ppo_config
from rl.config import TrainConfig
from rl.env_runner import VectorEnvRunner

pytestmark = pytest.mark.integration

CONFIG = TrainConfig.model_validate(
    {
        "env_config": {
            "synthetic_days": 4, "synthetic_seed": 3,
            "env": {"record_ledger": False, "episode_steps": 12},
        },
        "rollouts": {"envs_per_runner": 4},
        "seed": 5,
    }
)


def _runner(cls) -> SingleAgentEnvRunner:
    config: PPOConfig = ppo_config(CONFIG).env_runners(env_runner_cls=cls)
    return cls(config=config)


def _by_start(episodes) -> dict[tuple, dict]:
    """Episode chunks keyed by (episode start bar, t_started), with their data."""
    out = {}
    for e in episodes:
        obs = e.get_observations()
        key = (float(obs["market"][0].sum()), float(obs["portfolio"][0].sum()), e.t_started)
        out[key] = {
            "rewards": np.asarray(e.get_rewards()),
            "trade": np.asarray(e.get_actions()["trade"]),
            "size": np.asarray(e.get_actions()["size"]),
            "obs": np.asarray(obs["risk"]),
            "done": (e.is_terminated, e.is_truncated),
        }
    return out


@pytest.fixture(scope="module")
def runners(ray_local):
    rllib, fast = _runner(SingleAgentEnvRunner), _runner(VectorEnvRunner)
    fast.module.load_state_dict(rllib.module.state_dict())
    yield rllib, fast
    rllib.stop()
    fast.stop()


def test_batched_sampling_gives_rllibs_episodes_step_for_step(runners):
    rllib, fast = runners
    # 4 envs x 30 steps with 12-step episodes: finished episodes, resets, cut chunks
    expected = _by_start(rllib.sample(num_timesteps=120, explore=False))
    got = _by_start(fast.sample(num_timesteps=120, explore=False))

    assert got.keys() == expected.keys()
    for key, chunk in expected.items():
        for field, value in chunk.items():
            np.testing.assert_array_equal(got[key][field], value, err_msg=f"{key} {field}")


def test_episode_chunks_continue_across_sample_calls_with_the_same_id(runners):
    _, fast = runners
    first = fast.sample(num_timesteps=20, explore=True)
    second = fast.sample(num_timesteps=20, explore=True)

    ongoing = {e.id_: e for e in first if not e.is_done}
    continued = [e for e in second if e.id_ in ongoing]
    assert continued
    for e in continued:
        before = ongoing[e.id_]
        assert e.t_started == before.t_started + len(before)
        np.testing.assert_array_equal(
            e.get_observations(0)["market"], before.get_observations(-1)["market"]
        )
    metrics = fast.get_metrics()
    assert metrics["num_env_steps_sampled"] >= 20
