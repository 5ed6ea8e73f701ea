"""The numba fast path reproduces the torch module: action by action and run by run."""

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from backtest.engine import run_policy
from backtest.fast import encode_market, export_weights, run_hierarchical
from backtest.fast_kernels import decide
from envs.config import EnvConfig
from envs.registry import market_for
from envs.vector import PerpetualVectorEnv
from rl.evaluate import module_policy
from tests.unit.backtest.policies import decisive_module


@pytest.fixture(scope="module")
def setup():
    data = market_for({"synthetic_days": 4, "synthetic_seed": 5})
    env = PerpetualVectorEnv(data, EnvConfig(record_ledger=False), num_envs=64)
    return data, env, decisive_module(env)


def test_decide_matches_forward_inference_on_visited_states(setup):
    data, env, module = setup
    obs, _ = env.reset(seed=1)
    policy = module_policy(module)
    for _ in range(20):  # walk the accounts somewhere: open positions, drawdowns, stops
        obs, *_ = env.step(policy(obs))
    with torch.no_grad():
        expected = module.forward_inference(
            {Columns.OBS: {k: torch.from_numpy(v) for k, v in obs.items()}}
        )[Columns.ACTIONS]
    bars = env._state["t"].copy()
    encoded = encode_market(module, data, env.config.window, bars)
    weights = export_weights(module)
    n, a = len(bars), data.n_assets

    got = {"trade": np.zeros((n, a), np.int64), "size": np.zeros((n, a)),
           "risk": np.zeros((n, a, 2)), "execution": np.zeros((n, a, 2), np.int64)}
    inputs = np.zeros(module.layout.input_dim)
    for i in range(n):
        decide(encoded[i], obs["risk"][i].astype(np.float64),
               obs["portfolio"][i].astype(np.float64), weights, got["trade"][i],
               got["size"][i], got["risk"][i], got["execution"][i], inputs)

    assert len(np.unique(expected["trade"].numpy())) == 3  # the states exercise every decision
    np.testing.assert_array_equal(got["trade"], expected["trade"].numpy())
    np.testing.assert_allclose(got["size"], expected["size"].numpy(), atol=2e-6)
    np.testing.assert_allclose(got["risk"].reshape(n, -1), expected["risk"].numpy(), atol=2e-6)
    np.testing.assert_array_equal(got["execution"].reshape(n, -1), expected["execution"].numpy())


def test_fast_backtest_equals_the_general_loop_step_for_step(setup):
    data, _, module = setup
    config = EnvConfig()
    start = data.first_valid + 10

    slow = run_policy(module_policy(module), data, config, start, start + 1500, "torch")
    fast = run_hierarchical(module, data, config, start, start + 1500, "fast")

    assert len(slow.steps) == len(fast.steps) > 100
    assert slow.ended_early == fast.ended_early
    assert len(slow.ledger) == len(fast.ledger) > 20
    assert (slow.ledger["kind"] == fast.ledger["kind"]).all()
    # float32 torch vs float64 numba: sizes differ in the 7th digit, so do fills
    np.testing.assert_allclose(fast.steps["equity"], slow.steps["equity"], rtol=1e-6)
    np.testing.assert_allclose(fast.positions.to_numpy(), slow.positions.to_numpy(),
                               rtol=1e-5, atol=1.0)


def test_fast_path_refuses_a_module_it_cannot_reproduce(setup):
    data, env, _ = setup
    from rl.algo import module_spec
    from rl.config import TrainConfig

    spec = module_spec(TrainConfig().with_overrides(**{"model.kind": "mlp"}))
    spec.observation_space = env.single_observation_space
    spec.action_space = env.single_action_space
    mlp = spec.build()

    with pytest.raises(ValueError, match="hierarchical"):
        run_hierarchical(mlp, data, EnvConfig(), data.first_valid, data.first_valid + 10, "x")
