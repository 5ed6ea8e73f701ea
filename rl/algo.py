"""From a TrainConfig to RLlib's PPOConfig: the one place RLlib's dicts are built."""

from __future__ import annotations

import functools
from pathlib import Path

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.learner.torch.torch_learner import TorchCompileWhatToCompile
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.tune.registry import register_env

from envs.registry import make_env
from rl.callbacks import TradingMetricsCallback
from rl.config import RolloutSettings, TrainConfig
from rl.env_runner import VectorEnvRunner
from rl.gae import BatchedPPOConnector
from rl.learner import QuantumPPOLearner
from rl.modules.policy import MODULES
from rl.splits import held_out_env_config, part_env_config, run_splits
from rl.validation import validation_callbacks

ENV_NAME = "quantum-perpetual"
"""The env's name in Ray's registry (registered on first use; workers look it up)."""


def module_spec(config: TrainConfig, init_module: Path | None = None) -> RLModuleSpec:
    """The RLModuleSpec of the configured policy (spaces come from the env); with
    ``init_module`` (an RLModule checkpoint folder) its weights start from there."""
    return RLModuleSpec(
        module_class=MODULES[config.model.kind],
        model_config={"quantum": config.model.model_dump(mode="json")},
        load_state_path=str(Path(init_module).resolve()) if init_module else None,
    )


def resolve_env_runners(
    runs: RolloutSettings, trials: int = 1, cluster_cpus: float | None = None
) -> int:
    """The number of EnvRunners: as configured, or for 'auto' one per CPU of the Ray
    cluster (connected to, or ``cluster_cpus``) left after each of ``trials`` concurrent
    trials has its driver/local learner (1 CPU) and its CPU learners (1 CPU each).

    Resolved when the algorithm is built, so the same config adapts to a laptop and to
    a cluster; the run's config.yaml keeps 'auto' and placement.json records the result.
    """
    if runs.env_runners != "auto":
        return runs.env_runners
    if cluster_cpus is None:
        import ray

        cluster_cpus = float(ray.cluster_resources().get("CPU", 1.0))
    reserved = 1 + (runs.num_learners if runs.gpus_per_learner == 0 else 0)
    return max(0, int(cluster_cpus / max(trials, 1) - reserved))


def _batched_ppo_connector(obs_space, action_space, **settings):
    return BatchedPPOConnector(obs_space, action_space, **settings)


def ppo_config(
    config: TrainConfig,
    init_module: Path | None = None,
    *,
    trials: int = 1,
    callbacks: type = TradingMetricsCallback,
) -> PPOConfig:
    """PPO on the native batched env: each EnvRunner steps ``envs_per_runner`` accounts in
    one call (``gym_env_vectorize_mode="vector_entry_point"`` makes RLlib ask make_env
    for a PerpetualVectorEnv instead of wrapping copies).

    ``init_module`` starts the policy from a trained RLModule (phase continuation).
    ``trials`` is how many of these run at once (Tune), for 'auto' EnvRunners.
    Episodes read only the split's training part (rl.splits); ``callbacks`` (an
    RLlibCallback class) gets the periodic validation on the held-out validation part
    (rl.validation) added.

    Actions go to the env exactly as the module produced them: the Box parts are
    already in [0, 1] (Beta heads), so RLlib's unsquashing and clipping are off; the
    env rejects anything out of range rather than clipping it.
    """
    register_env(ENV_NAME, make_env)
    ppo, runs = config.ppo, config.rollouts
    splits, _ = run_splits(config.env_config, config.split)
    if config.validation.every and splits.validation is not None:
        held_out = held_out_env_config(config.env_config, splits.validation)
        callbacks = validation_callbacks(callbacks, config.validation, held_out)
    env_runners = resolve_env_runners(runs, trials)
    samplers = max(env_runners, 1) * runs.envs_per_runner
    rollout_fragment = max(1, ppo.train_batch_size // samplers)
    return (
        PPOConfig()
        .environment(
            env=ENV_NAME,
            env_config=part_env_config(config.env_config, splits.train),
            normalize_actions=False,
            clip_actions=False,
        )
        .env_runners(
            env_runner_cls=VectorEnvRunner,
            num_env_runners=env_runners,
            num_envs_per_env_runner=runs.envs_per_runner,
            gym_env_vectorize_mode="vector_entry_point",
            rollout_fragment_length=rollout_fragment,
            num_cpus_per_env_runner=1,
        )
        .learners(
            learner_class=QuantumPPOLearner,
            num_learners=runs.num_learners,
            num_gpus_per_learner=runs.gpus_per_learner,
            # episodes -> batch and GAE in a few array ops, values from the sampling pass
            learner_connector=functools.partial(
                _batched_ppo_connector,
                gamma=ppo.gamma,
                lambda_=ppo.lambda_,
                normalize_rewards=ppo.normalize_rewards,
                reward_clip=ppo.reward_clip,
                advantage_std_floor=ppo.advantage_std_floor,
            ),
            add_default_connectors_to_learner_pipeline=False,
        )
        .training(
            lr=ppo.lr,
            minibatch_size=ppo.minibatch_size,
            train_batch_size_per_learner=ppo.train_batch_size // max(runs.num_learners, 1),
            num_epochs=ppo.num_epochs,
            gamma=ppo.gamma,
            lambda_=ppo.lambda_,
            clip_param=ppo.clip_param,
            entropy_coeff=ppo.entropy_coeff,
            vf_loss_coeff=ppo.vf_loss_coeff,
            vf_clip_param=ppo.vf_clip_param,
            grad_clip=ppo.grad_clip,
            grad_clip_by="global_norm",
            use_kl_loss=ppo.kl_coeff > 0 or ppo.track_kl,
            kl_coeff=ppo.kl_coeff,
        )
        # non-finite gradients are caught once per update by QuantumPPOLearner's clipping
        .framework(
            torch_skip_nan_gradients=True,
            # RLlib leaves torch_compile_worker unused and would compile its own update loop;
            # rl.learner and rl.env_runner read both flags and compile their own steps
            torch_compile_learner=runs.compile,
            torch_compile_learner_what_to_compile=TorchCompileWhatToCompile.COMPLETE_UPDATE,
            torch_compile_worker=runs.compile,
        )
        .rl_module(rl_module_spec=module_spec(config, init_module))
        .callbacks(callbacks)
        .debugging(seed=config.seed)
        # a crashed or killed EnvRunner is recreated at the next iteration; runners are cheap
        # to rebuild (the market is cached per process), so there is no point waiting RLlib's
        # default minute between restarts
        .fault_tolerance(restart_failed_env_runners=True, delay_between_env_runner_restarts_s=1.0)
    )
