"""The names of training metrics, as they appear in results.jsonl, W&B and Tune.

Training rows are RLlib's nested results flattened with '/' (rl.train.flatten), plus
what our callbacks add: trading statistics per finished episode (rl.callbacks) and
validation on the held-out part (rl.validation). The train summary, the diagnosis,
the phase recommendations, Tune's reporting and the CLI all read these names, so they
are spelled here once.
"""

from __future__ import annotations

POLICY = "learners/default_policy/"
"""Learner metrics of the (single) policy: losses, entropy, KL, value fit."""
TRADING = "env_runners/trading/"
"""Trading statistics of the episodes training finished (envs.episode_stats keys)."""
VALIDATION_PART = "validation"
"""The result key rl.validation writes under (a dict of episode statistics)."""
VALIDATION = f"{VALIDATION_PART}/"
FRESH = "fresh"
"""validation/fresh: 1.0 in an iteration that evaluated, 0.0 where the last one is carried."""
STEPS = "num_env_steps_sampled_lifetime"
"""Env steps sampled over the run's lifetime (continues across --resume and phases)."""
EPISODE_RETURN = "env_runners/episode_return_mean"
STEPS_PER_S = "env_steps_per_s"
"""Added by rl.train: env steps sampled per second of the iteration."""

ENTROPY = f"{POLICY}entropy"
VF_EXPLAINED_VAR = f"{POLICY}vf_explained_var"
VF_LOSS = f"{POLICY}vf_loss"
POLICY_LOSS = f"{POLICY}policy_loss"
MEAN_KL = f"{POLICY}mean_kl_loss"
REWARD_ABS_MEAN = f"{POLICY}reward_abs_mean"
ENTROPY_COEFF = f"{POLICY}curr_entropy_coeff"

SUMMARY = (
    "env_runners/num_episodes_lifetime",
    EPISODE_RETURN,
    f"{TRADING}return",
    f"{TRADING}sharpe",
    f"{TRADING}max_drawdown",
    f"{TRADING}fees",
    f"{TRADING}funding",
    f"{TRADING}turnover",
    f"{TRADING}liquidated",
    ENTROPY,
    REWARD_ABS_MEAN,
    VF_EXPLAINED_VAR,
    VF_LOSS,
    POLICY_LOSS,
    STEPS_PER_S,
)
"""What a run's summary shows (the CLI's table and W&B's run summary)."""


def validation(metric: str) -> str:
    """The flattened key of a validation statistic ('return' -> 'validation/return')."""
    return f"{VALIDATION}{metric}"


def trading(metric: str) -> str:
    """The flattened key of a training-episode statistic."""
    return f"{TRADING}{metric}"
