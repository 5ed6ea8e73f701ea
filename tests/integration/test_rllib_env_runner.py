"""RLlib's own EnvRunner drives the native batched env (no RL training here)."""

import numpy as np
import pytest
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.spaces.space_utils import batch as batch_actions

from envs.registry import make_env
from envs.vector import PerpetualVectorEnv


class RandomTorchModule(TorchRLModule):
    """Samples uniformly from the action space: a stand-in policy for driving the env runner."""

    def _forward(self, batch, **kwargs):
        n = len(batch[Columns.OBS]["risk"])
        return {Columns.ACTIONS: batch_actions([self.action_space.sample() for _ in range(n)])}


ENV_CONFIG = {"synthetic_days": 4, "synthetic_seed": 3, "env": {"episode_steps": 30}}


@pytest.fixture(scope="module")
def runner():
    config = (
        PPOConfig()
        .environment(env=make_env, env_config=ENV_CONFIG)
        .env_runners(num_envs_per_env_runner=16, gym_env_vectorize_mode="vector_entry_point")
        .rl_module(rl_module_spec=RLModuleSpec(module_class=RandomTorchModule))
    )
    env_runner = SingleAgentEnvRunner(config=config)
    yield env_runner
    env_runner.stop()


def test_env_runner_uses_the_native_vector_env_with_one_market_copy(runner):
    assert isinstance(runner.env.unwrapped, PerpetualVectorEnv)
    assert runner.env.unwrapped.num_envs == 16
    assert make_env(ENV_CONFIG).unwrapped._vec.data is runner.env.unwrapped.data


def test_env_runner_samples_complete_episodes_with_reward_terms(runner):
    episodes = runner.sample(num_timesteps=16 * 70, random_actions=False)

    done = [e for e in episodes if e.is_done]
    assert len(done) >= 16
    lengths = [len(e) for e in done]
    assert max(lengths) <= 30
    infos = done[0].get_infos()
    assert {"equity", "reward_log_return", "reward_turnover"} <= set(infos[-1])
    rewards = np.concatenate([e.get_rewards() for e in episodes])
    assert np.isfinite(rewards).all() and (rewards != 0).any()


def test_unknown_env_config_keys_are_errors():
    with pytest.raises(ValueError, match="unknown env_config keys"):
        make_env({"windw": 3})
