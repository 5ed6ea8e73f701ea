"""The tiny training config the integration tests share (seconds per iteration)."""

from rl.config import TrainConfig

TINY_ENV = {
    "synthetic_days": 4,
    "synthetic_seed": 3,
    "env": {"record_ledger": False, "episode_steps": 32},
}
TINY = {
    "env_config": TINY_ENV,
    "ppo": {"train_batch_size": 256, "minibatch_size": 64, "num_epochs": 2},
    "rollouts": {"envs_per_runner": 8},
    "steps": 512,
    "checkpoint_every": 1,
    "seed": 11,
}


def tiny(**overrides) -> TrainConfig:
    """TINY with dotted-key overrides ('ppo.num_epochs': 1)."""
    return TrainConfig.model_validate(TINY).with_overrides(**overrides)
