"""PPO's torch Learner with the per-update overheads removed.

Profiled at the seed setting (320 minibatch updates of 64 per iteration), RLlib's
TorchLearner spent as long on bookkeeping as on the model: it checks every gradient
tensor for NaN/inf twice per update (two host syncs per parameter), clips by global
norm one tensor at a time, and runs Adam's single-tensor loop. Here:

- Adam runs fused (one kernel over all parameters; foreach where fused is missing);
- clipping uses torch's foreach norms and scaling, and one finiteness check of the
  global norm replaces the per-tensor ones: non-finite gradients are zeroed (as
  RLlib's default does) and logged, so the update cannot poison the weights.

The algorithm (loss, GAE, clipping rule, learning-rate handling) is RLlib's own.
"""

from __future__ import annotations

import logging

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

log = logging.getLogger(__name__)


def clip_by_global_norm(gradients: dict, grad_clip: float, grad_clip_by: str) -> torch.Tensor:
    """Scale gradients in place so their global L2 norm is at most grad_clip; return the norm.

    Non-finite gradients are set to zero (the update becomes a no-op for them).
    """
    if grad_clip_by != "global_norm":
        raise ValueError("QuantumPPOLearner clips by global_norm only")
    grads = [g for g in gradients.values() if g is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if not torch.isfinite(total):
        log.warning("non-finite gradients (norm %s): zeroed for this update", total.item())
        torch._foreach_zero_(grads)
        return torch.tensor(0.0)
    scale = torch.clamp(grad_clip / (total + 1e-6), max=1.0)
    torch._foreach_mul_(grads, scale)
    return total


class QuantumPPOLearner(PPOTorchLearner):
    """PPOTorchLearner with fused Adam and one-pass gradient clipping (module docstring)."""

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        module = self._module[module_id]
        params = self.get_parameters(module)
        try:
            optimizer = torch.optim.Adam(params, fused=True)
        except (RuntimeError, TypeError):
            optimizer = torch.optim.Adam(params, foreach=True)
        self.register_optimizer(
            module_id=module_id, optimizer=optimizer, params=params, lr_or_lr_schedule=config.lr
        )

    @staticmethod
    def _get_clip_function():
        return clip_by_global_norm
