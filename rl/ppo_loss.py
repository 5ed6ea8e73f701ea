"""PPO's clipped-surrogate loss as one function over a minibatch, for the fast learner loop.

The maths is RLlib's ``PPOTorchLearner.compute_loss_for_module`` term for term (a
unit test compares the two on the same batch): ratio of new to old action
probabilities, clipped surrogate, squared value error clipped at ``vf_clip``,
entropy bonus and an optional KL penalty. It differs in what it does *not* do per
minibatch, which is where RLlib's version spends its time on small CPU updates:

- no metrics-logger calls: the loss terms come back as one detached tensor, and
  the learner logs their means once per update;
- no loss mask: the learner drops the masked rows (PPO's artificial bootstrap
  timestep per episode chunk) once per update, so every minibatch is all valid rows
  and a plain mean equals RLlib's masked mean;
- the KL term enters the graph only when it is weighted; when it is only tracked
  (``kl_coeff`` 0), the learner measures it without gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

STATS = ("policy_loss", "vf_loss", "vf_loss_unclipped", "entropy")
"""Order of the detached loss terms returned with the loss."""


@dataclass(frozen=True)
class LossWeights:
    """The loss's settings for one update (the entropy and KL weights may be scheduled)."""

    clip_param: float
    vf_clip_param: float
    vf_loss_coeff: float
    entropy_coeff: float
    kl_coeff: float = 0.0


def ppo_loss(
    module: Any, batch: dict[str, Any], fwd_out: dict[str, Any], weights: LossWeights
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Total loss, the detached STATS terms (means) and the detached value predictions.

    ``module`` is the (unwrapped) RLModule that produced ``fwd_out`` from ``batch``.
    """
    dist_cls = module.get_train_action_dist_cls()
    curr = dist_cls.from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
    ratio = torch.exp(curr.logp(batch[Columns.ACTIONS]) - batch[Columns.ACTION_LOGP])
    advantages = batch[Postprocessing.ADVANTAGES]
    surrogate = torch.min(
        advantages * ratio,
        advantages * torch.clamp(ratio, 1 - weights.clip_param, 1 + weights.clip_param),
    )
    entropy = curr.entropy()
    values = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))
    vf_loss = torch.pow(values - batch[Postprocessing.VALUE_TARGETS], 2.0)
    vf_clipped = torch.clamp(vf_loss, 0, weights.vf_clip_param)
    total = torch.mean(
        -surrogate + weights.vf_loss_coeff * vf_clipped - weights.entropy_coeff * entropy
    )
    if weights.kl_coeff > 0:
        prev = module.get_exploration_action_dist_cls().from_logits(
            batch[Columns.ACTION_DIST_INPUTS]
        )
        total = total + weights.kl_coeff * torch.mean(prev.kl(curr))
    with torch.no_grad():
        stats = torch.stack([-surrogate.mean(), vf_clipped.mean(), vf_loss.mean(), entropy.mean()])
    return total, stats, values.detach()


@torch.no_grad()
def mean_kl(module: Any, batch: dict[str, Any], dist_inputs: torch.Tensor) -> torch.Tensor:
    """Mean KL(old policy || current policy) over the minibatch, without gradients;
    ``dist_inputs`` are the current policy's (forward_train's) distribution inputs."""
    prev = module.get_exploration_action_dist_cls().from_logits(batch[Columns.ACTION_DIST_INPUTS])
    curr = module.get_train_action_dist_cls().from_logits(dist_inputs.detach())
    return prev.kl(curr).mean()
