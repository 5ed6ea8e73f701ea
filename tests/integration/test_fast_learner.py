"""The fast PPO pieces against RLlib's own: batch + GAE connector, loss, update loop."""

import copy

import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.learner import (
    AddOneTsToEpisodesAndTruncate,
    GeneralAdvantageEstimation,
)
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from rl.algo import ppo_config
from rl.env_runner import VectorEnvRunner
from rl.gae import VF_NEXT, BatchedPPOConnector
from rl.learner import _valid_rows
from rl.ppo_loss import LossWeights, ppo_loss
from tests.integration.configs import tiny

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rollout(ray_local):
    """A learner and 300 sampled steps (8 envs, 32-step episodes: ends, resets, cut chunks)."""
    config = ppo_config(tiny(**{"ppo.kl_coeff": 0.2}))
    runner = VectorEnvRunner(config=config)
    env = runner.env.unwrapped
    learner = config.build_learner(
        env=None,
        spaces={DEFAULT_MODULE_ID: (env.single_observation_space, env.single_action_space)},
    )
    learner.build()
    runner.module.load_state_dict(learner.module[DEFAULT_MODULE_ID].state_dict())
    episodes = runner.sample(num_timesteps=300, explore=True)
    yield config, learner, episodes
    runner.stop()


def _rllib_batch(config, learner, episodes):
    """RLlib's default PPO learner pipeline (what PPOLearner builds) on copies of episodes."""
    pipeline = config.copy(copy_frozen=False).learners(
        learner_connector=None, add_default_connectors_to_learner_pipeline=True
    ).build_learner_connector(learner.module[DEFAULT_MODULE_ID].observation_space,
                              learner.module[DEFAULT_MODULE_ID].action_space)
    pipeline.prepend(AddOneTsToEpisodesAndTruncate())
    pipeline.append(GeneralAdvantageEstimation(gamma=config.gamma, lambda_=config.lambda_))
    batch = pipeline(
        rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes), shared_data={}
    )
    return batch[DEFAULT_MODULE_ID]


def _ours(config, episodes, module, drop=()):
    chunks = copy.deepcopy(episodes)
    for e in chunks:
        for key in drop:
            del e.extra_model_outputs[key]
    connector = BatchedPPOConnector(gamma=config.gamma, lambda_=config.lambda_)
    return connector(rl_module=module, batch={}, episodes=chunks)[DEFAULT_MODULE_ID]


@pytest.mark.parametrize("values_from", ["sampling", "recomputed"])
def test_batched_connector_gives_rllibs_advantages_and_targets(rollout, values_from):
    config, learner, episodes = rollout
    assert any(e.is_terminated or e.is_truncated for e in episodes)
    assert any(not e.is_done for e in episodes)
    expected = _valid_rows(_rllib_batch(config, learner, episodes))
    drop = () if values_from == "sampling" else (Columns.VF_PREDS, VF_NEXT)
    got = _ours(config, episodes, learner.module, drop)

    np.testing.assert_allclose(
        got[Postprocessing.VALUE_TARGETS].numpy(),
        expected[Postprocessing.VALUE_TARGETS].numpy(), atol=1e-5, rtol=1e-5,
    )
    # RLlib standardises advantages over every row, its artificial bootstrap rows included;
    # ours over the real rows only: the same advantages up to a positive affine map
    ours = got[Postprocessing.ADVANTAGES].numpy()
    rllib = expected[Postprocessing.ADVANTAGES].numpy()
    assert ours.mean() == pytest.approx(0.0, abs=1e-5) and ours.std() == pytest.approx(1.0, 1e-4)
    slope, intercept = np.polyfit(ours, rllib, 1)
    assert slope > 0
    np.testing.assert_allclose(slope * ours + intercept, rllib, atol=1e-4)
    for key in (Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS):
        np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy())
    for key in ("market", "risk", "portfolio"):
        np.testing.assert_array_equal(got[Columns.OBS][key], expected[Columns.OBS][key])
    for key in ("trade", "size", "risk", "execution"):
        np.testing.assert_array_equal(got[Columns.ACTIONS][key], expected[Columns.ACTIONS][key])


def test_fused_loss_equals_rllibs_ppo_loss(rollout):
    config, learner, episodes = rollout
    batch = _ours(config, episodes, learner.module)
    module = learner.module[DEFAULT_MODULE_ID]
    with torch.no_grad():  # perturb the policy so ratios, clipping and KL are not trivial
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    fwd_out = module.forward_train(batch)
    expected = PPOTorchLearner.compute_loss_for_module(
        learner, module_id=DEFAULT_MODULE_ID, config=config, batch=batch, fwd_out=fwd_out
    )
    weights = LossWeights(
        clip_param=config.clip_param, vf_clip_param=config.vf_clip_param,
        vf_loss_coeff=config.vf_loss_coeff, entropy_coeff=config.entropy_coeff,
        kl_coeff=config.kl_coeff,
    )
    got, terms, _ = ppo_loss(module, batch, fwd_out, weights)

    assert config.kl_coeff > 0 and config.use_kl_loss
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.isfinite(terms).all()


def test_training_with_torch_compile_runs_the_compiled_steps(ray_local, caplog):
    from torch._dynamo.utils import counters

    config = tiny(**{"rollouts.compile": True, "model.kind": "mlp", "tracking.wandb": False})
    algo = ppo_config(config).build_algo()
    try:
        with caplog.at_level("WARNING"):
            results = [algo.train() for _ in range(2)]
    finally:
        algo.stop()

    assert not [r for r in caplog.records if "torch.compile of" in r.getMessage()]
    assert counters["stats"]["unique_graphs"] >= 2  # the sampling forward and the loss step
    learner = results[-1]["learners"][DEFAULT_MODULE_ID]
    assert np.isfinite([learner["policy_loss"], learner["vf_loss"], learner["entropy"]]).all()
    assert results[-1]["num_env_steps_sampled_lifetime"] == 2 * 256
