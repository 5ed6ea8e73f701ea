"""Typed, frozen configuration of a training run: model, PPO, rollouts, tracking.

Everything a run needs is one ``TrainConfig``; it is written into the run folder
and its hash goes into the reproducibility manifest. YAML files use the same field
names (``TrainConfig.from_yaml``); unknown keys are errors. RLlib sees these values
only at the boundary (``rl.algo.ppo_config``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def get_path(tree: Any, path: tuple[str, ...]) -> Any:
    """The leaf at ``path`` in nested dicts, or None (a missing key or a non-leaf)."""
    for part in path:
        tree = tree.get(part) if isinstance(tree, dict) else None
    return None if isinstance(tree, dict) else tree


class ModelConfig(BaseModel):
    """The policy network (``rl.modules``): sizes are small by default so CPUs train fast."""

    model_config = _FROZEN
    kind: Literal["hierarchical", "mlp"] = Field(
        "hierarchical",
        description="'hierarchical': transformer + cross-asset attention + risk LSTM encoder; "
        "'mlp': the baseline encoder over the flattened observation (same heads).",
    )
    d_model: int = Field(32, ge=4, description="Width of the market transformer per asset.")
    patch: int = Field(
        6,
        ge=1,
        description="Bars per transformer token (PatchTST-style): 24 bars -> 4 tokens. One "
        "token per bar costs 3x more per update on CPU for no gain on 1-minute bars.",
    )
    layers: int = Field(1, ge=1, description="Transformer encoder layers.")
    heads: int = Field(2, ge=1, description="Attention heads (transformer and cross-asset).")
    ff_mult: int = Field(2, ge=1, description="Transformer feed-forward width / d_model.")
    risk_hidden: int = Field(
        16, ge=4, description="Hidden size of the risk LSTM (6 risk features in)."
    )
    text_dim: int = Field(
        0,
        ge=0,
        description="Size of the optional `text` observation embeddings (e.g. 384 for "
        "all-MiniLM-L6-v2); 0 disables the text encoder.",
    )
    text_hidden: int = Field(32, ge=4, description="Text encoder output size.")
    fusion_hidden: int = Field(128, ge=8, description="Width of the fusion layer.")
    head_hidden: int = Field(64, ge=8, description="Hidden width of every action head.")
    value_only: bool = Field(
        False,
        description="Train only the value head (everything else frozen): value-function "
        "recalibration before continuing with new hyperparameters or rewards.",
    )
    mlp_hidden: tuple[int, ...] = Field(
        (64, 64),
        description="Hidden layers of the MLP baseline encoder (SB3 MlpPolicy's default).",
    )

    @model_validator(mode="after")
    def _divisible(self) -> ModelConfig:
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        return self


class PPOSettings(BaseModel):
    """PPO hyperparameters; defaults are the seed's (lr 3e-4, minibatch 64, 2048 steps per
    update, 10 epochs, gamma 0.99, lambda 0.95, clip 0.2)."""

    model_config = _FROZEN
    lr: float = Field(3e-4, gt=0, description="Adam learning rate.")
    minibatch_size: int = Field(64, ge=1, description="SGD minibatch (env steps).")
    train_batch_size: int = Field(2048, ge=1, description="Env steps collected per update.")
    num_epochs: int = Field(10, ge=1, description="Passes over each train batch.")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    lambda_: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    clip_param: float = Field(0.2, gt=0, description="PPO ratio clip.")
    entropy_coeff: float = Field(0.01, ge=0, description="Entropy bonus weight.")
    vf_loss_coeff: float = Field(0.5, ge=0, description="Value loss weight.")
    vf_clip_param: float = Field(10.0, gt=0, description="Value-loss clip (reward units).")
    grad_clip: float = Field(0.5, gt=0, description="Global gradient-norm clip.")
    kl_coeff: float = Field(
        0.0, ge=0, description="KL penalty (0 = plain clipped PPO, as the seed's SB3 PPO)."
    )
    track_kl: bool = Field(
        True,
        description="Measure the KL of each update even without a penalty (the phase "
        "recommendations read it; costs a few percent of an update).",
    )


class RolloutSettings(BaseModel):
    """Who collects experience: EnvRunner actors, each stepping a native batched env."""

    model_config = _FROZEN
    env_runners: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        0,
        description="Remote EnvRunner actors (0 = sample in the driver process; 'auto' = "
        "one per CPU the Ray cluster has left after the driver and the learners).",
    )
    envs_per_runner: int = Field(8, ge=1, description="Envs stepped together in each runner.")
    num_learners: int = Field(0, ge=0, description="Remote learners (0 = in the driver).")
    gpus_per_learner: float = Field(0.0, ge=0, description="GPUs per learner.")
    compile: bool = Field(
        False,
        description="torch.compile the policy's sampling forward (EnvRunners) and each "
        "minibatch's forward pass and PPO loss, and so its backward (Learner): about 2x "
        "faster small-batch updates on CPU, after a one-off compile of ~20 s per process "
        "(a few seconds once inductor's disk cache is warm). Worth it for long runs; off by "
        "default so short runs and tests start at once.",
    )


class TrackingSettings(BaseModel):
    """Weights & Biases: offline unless WANDB_API_KEY is set (see rl.tracking)."""

    model_config = _FROZEN
    wandb: bool = Field(True, description="Log to W&B (offline without an API key).")
    project: str = Field("quantum", description="W&B project.")
    group: str | None = Field(None, description="W&B group (phases, PBT populations).")


class TrainConfig(BaseModel):
    """A whole training run."""

    model_config = _FROZEN
    env_config: dict[str, Any] = Field(
        default_factory=lambda: {"synthetic_days": 30.0, "env": {"record_ledger": False}},
        description="Passed to envs.registry.make_env (data source, EnvConfig fields).",
    )
    model: ModelConfig = ModelConfig()
    ppo: PPOSettings = PPOSettings()
    rollouts: RolloutSettings = RolloutSettings()
    tracking: TrackingSettings = TrackingSettings()
    steps: int = Field(100_000, ge=1, description="Env steps to train for (lifetime total).")
    checkpoint_every: int = Field(10, ge=1, description="Iterations between checkpoints.")
    seed: int = Field(0, description="Seeds RLlib, torch and the envs.")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of TrainConfig fields")
        return cls.model_validate(data)

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with nested fields replaced, validated again (dotted keys: 'ppo.lr')."""
        data = self.model_dump()
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split(".")
            free = parents[:1] == ["env_config"]  # a plain dict: make_env validates it
            for key in parents:
                if key not in node and not free:
                    raise ValueError(f"unknown config key {dotted!r}")
                node = node.setdefault(key, {})
            if leaf not in node and not free:
                raise ValueError(f"unknown config key {dotted!r}")
            node[leaf] = value
        return TrainConfig.model_validate(data)

    def value(self, dotted: str) -> Any:
        """The value at a dotted key ('ppo.lr', 'env_config.env.reward.drawdown'), or None
        where the key is not set (the reverse of with_overrides)."""
        return get_path(self.model_dump(), tuple(dotted.split(".")))

    def digest(self) -> str:
        """sha256 of the canonical JSON form (the manifest's config hash)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()
