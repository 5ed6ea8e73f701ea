"""Typed, frozen configuration of a training run: model, PPO, rollouts, tracking.

Everything a run needs is one ``TrainConfig``; it is written into the run folder
and its hash goes into the reproducibility manifest. YAML files use the same field
names (``TrainConfig.from_yaml``); unknown keys are errors. RLlib sees these values
only at the boundary (``rl.algo.ppo_config``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from envs.config import EnvConfig
    from envs.market_spec import MarketSpec

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
        description="Width the `text` observation must have (checked; 0: whatever it "
        "has). The text encoder is on when the observation has a `text` part "
        "(env_config.news.text).",
    )
    text_hidden: int = Field(32, ge=4, description="Text encoder output size.")
    fusion_hidden: int = Field(128, ge=8, description="Width of the fusion layer.")
    head_hidden: int = Field(64, ge=8, description="Hidden width of every action head.")
    initial_size: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Mean size of the initial policy, as a fraction of the exposure budget "
        "(0.05: half the equity per asset at the default 20x and 0.5 concentration). A "
        "uniform Beta starts at half the budget, 5x equity per asset: its random trades "
        "lose several percent a day and hit the daily loss limit, and that noise is what "
        "the first updates learn from (rl.modules.heads).",
    )
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
    gamma: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Discount factor per decision. 0.9 looks about 10 decisions (2.5 hours "
        "of 15-minute steps) ahead: a decision's PnL is made within a few steps, and a "
        "longer horizon (the seed's 0.99) adds the noise of many future price moves to "
        "every advantage, which buried the cost of a trade on real data.",
    )
    lambda_: float = Field(
        0.9, ge=0, le=1, description="GAE lambda (0.9 with gamma 0.9: ~5-step advantages)."
    )
    clip_param: float = Field(0.2, gt=0, description="PPO ratio clip.")
    entropy_coeff: float = Field(0.01, ge=0, description="Entropy bonus weight.")
    vf_loss_coeff: float = Field(0.5, ge=0, description="Value loss weight.")
    vf_clip_param: float = Field(
        10.0,
        gt=0,
        description="Clip of the squared value error (RLlib's meaning: errors above "
        "sqrt(vf_clip_param) get no gradient). Fits normalised rewards, whose returns have "
        "a std of about 1; with raw rewards check it against the returns' scale.",
    )
    normalize_rewards: bool = Field(
        True,
        description="Divide rewards by the running std of the discounted return (rl.returns; "
        "SB3's VecNormalize): value targets on a scale of about 1 on any market.",
    )
    reward_clip: float = Field(
        10.0, gt=0, description="Clip of normalised rewards (in return std units)."
    )
    advantage_std_floor: float = Field(
        0.05,
        gt=0,
        description="Advantages are divided by max(their std, this) (rl.gae): when a policy "
        "has stopped trading its advantages are only value errors, which standardising "
        "would blow up into random updates. In normalised reward units (0.05 is a tenth of "
        "what trading policies show); set about 1e-4 with normalize_rewards off.",
    )
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


class SplitConfig(BaseModel):
    """Where the validation and test parts start: by fraction of the usable bars, or by
    date (a date wins over the fraction)."""

    model_config = _FROZEN
    validation: float = Field(
        0.15, ge=0, lt=1, description="Fraction of the usable bars held out for validation."
    )
    test: float = Field(
        0.15, ge=0, lt=1, description="Fraction of the usable bars held out for the test."
    )
    validation_start: str | None = Field(
        None, description="UTC time the validation part starts (overrides the fraction)."
    )
    test_start: str | None = Field(
        None, description="UTC time the test part starts (overrides the fraction)."
    )
    gap_bars: int = Field(
        60,
        ge=0,
        description="Bars left out before each held-out part (purge/embargo). Training "
        "episodes never read past their part (rl.splits), so no training reward depends on "
        "held-out prices; the gap is a margin on top.",
    )

    @field_validator("validation_start", "test_start", mode="before")
    @classmethod
    def _iso(cls, value: Any) -> Any:
        """YAML reads 2023-08-05 as a date: keep it as its ISO text."""
        return value.isoformat() if isinstance(value, date | datetime) else value

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.validation + self.test >= 0.9:
            raise ValueError("validation + test must leave at least 10% of the data to train on")
        return self


VALIDATION_METRICS = ("return", "sharpe", "max_drawdown", "turnover", "fees")
"""Mean episode statistics reported under validation/ (rl.validation)."""


class ValidationSettings(BaseModel):
    """How often and how widely the policy is evaluated on the validation part."""

    model_config = _FROZEN
    every: int = Field(5, ge=0, description="Iterations between evaluations (0: never).")
    episodes: int = Field(
        16, ge=2, description="Episodes, from starts spread evenly over the validation part."
    )
    workers: int = Field(
        0, ge=0, description="Ray tasks (1 CPU each) the episodes are split over; 0: the driver."
    )
    metric: Literal["return", "sharpe"] = Field(
        "return", description="What selects the best checkpoint and scores Tune trials."
    )


class TrackingSettings(BaseModel):
    """Weights & Biases: offline unless WANDB_API_KEY is set (see rl.tracking)."""

    model_config = _FROZEN
    wandb: bool = Field(True, description="Log to W&B (offline without an API key).")
    project: str = Field("quantum", description="W&B project.")
    group: str | None = Field(None, description="W&B group (phases, PBT populations).")


DEFAULT_ENV_CONFIG: dict[str, Any] = {
    "synthetic_days": 30.0,
    "env": {"record_ledger": False, "bars_per_step": 15, "episode_steps": 96},
}
"""What training reads unless a config says otherwise (merged under every config's
env_config). A decision every 15 one-minute bars: one-minute decisions drown a
trade's fee in the next minute's price noise and give a policy 1,440 chances a day to
churn, while 15 minutes move prices about 4x as much for the same cost per trade.
Episodes of 96 decisions are one day."""


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


class TrainConfig(BaseModel):
    """A whole training run."""

    model_config = _FROZEN
    env_config: dict[str, Any] = Field(
        default_factory=lambda: _merged(DEFAULT_ENV_CONFIG, {}),
        description="Passed to envs.registry.make_env (data source, EnvConfig fields); "
        "merged over DEFAULT_ENV_CONFIG, so a config names only what it changes.",
    )
    split: SplitConfig = SplitConfig()
    validation: ValidationSettings = ValidationSettings()
    model: ModelConfig = ModelConfig()
    ppo: PPOSettings = PPOSettings()
    rollouts: RolloutSettings = RolloutSettings()
    tracking: TrackingSettings = TrackingSettings()
    steps: int = Field(100_000, ge=1, description="Env steps to train for (lifetime total).")
    checkpoint_every: int = Field(10, ge=1, description="Iterations between checkpoints.")
    seed: int = Field(0, description="Seeds RLlib, torch and the envs.")

    @model_validator(mode="before")
    @classmethod
    def _env_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("env_config"), dict):
            given = data["env_config"]
            defaults = dict(DEFAULT_ENV_CONFIG)
            if given.get("data_dir") is not None:  # stored data: no synthetic market keys
                defaults.pop("synthetic_days")
            data = {**data, "env_config": _merged(defaults, given)}
        return data

    @property
    def market(self) -> MarketSpec:
        """The market the run trains on (the market keys of ``env_config``)."""
        from envs.market_spec import MarketSpec

        return MarketSpec.of(self.env_config)

    @property
    def env(self) -> EnvConfig:
        """The simulator settings (``env_config['env']`` validated)."""
        from envs.config import EnvConfig

        return EnvConfig(**self.env_config.get("env", {}))

    def with_store_tiers(self) -> TrainConfig:
        """This config with the leverage tiers recorded in its store (market.tiers) as the
        margin tables of its assets, so liquidation follows the venue's own tables and the
        saved run carries them to backtests, paper trading and serving. Tables the config
        names itself (env.margin.asset_brackets) win; a synthetic market or a store with no
        tiers recorded leaves the config as it is."""
        from envs.config import MarginConfig
        from market.loader import DEFAULT_SYMBOLS
        from market.tiers import read_tiers

        data_dir = self.env_config.get("data_dir")  # the raw keys: YAML may hold dates
        if data_dir is None:
            return self
        recorded = read_tiers(data_dir, self.env_config.get("exchange") or "synthetic")
        given = self.env_config.get("env", {}).get("margin", {})
        named = {a.upper() for a in given.get("asset_brackets", {})}
        margin = MarginConfig(**given)
        brackets = {a: [list(row) for row in t] for a, t in margin.asset_brackets.items()}
        leverage = {a: list(levels) for a, levels in margin.asset_leverage.items()}
        used = False
        for symbol in self.env_config.get("symbols") or DEFAULT_SYMBOLS:
            entry = recorded.get(symbol)
            if entry is None or entry["asset"].upper() in named:
                continue
            asset = entry["asset"].upper()
            brackets[asset], leverage[asset] = entry["brackets"], entry["max_leverage"]
            used = True
        if not used:
            return self
        return self.with_overrides(**{"env_config.env.margin.asset_brackets": brackets,
                                      "env_config.env.margin.asset_leverage": leverage})

    def on_market(self, market: MarketSpec) -> TrainConfig:
        """This config on another market: the market keys replaced, and the run's own
        episode starts (start_range, start_fraction, span) dropped."""
        from envs.market_spec import EPISODE_KEYS

        env_config = {k: v for k, v in self.env_config.items() if k not in EPISODE_KEYS}
        return self.model_copy(update={"env_config": market.into(env_config)})

    @property
    def validates(self) -> bool:
        """Whether the run evaluates on a validation part (rl.validation)."""
        split = self.split
        held_out = split.validation > 0 or split.validation_start is not None
        return bool(self.validation.every) and held_out

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
