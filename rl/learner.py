"""PPO's torch Learner with the per-minibatch overheads removed.

Profiled at the seed setting (2048 steps per update, minibatch 64, 10 epochs: 320
minibatch updates per iteration), RLlib's TorchLearner spent longer on bookkeeping
than on the model: a dm-tree slice of the nested batch per minibatch, a dozen
metrics-logger calls per minibatch, a loss-mask gather per loss term, NaN checks per
gradient tensor (a host sync per parameter) and Adam's single-tensor loop. Here:

- ``update`` keeps RLlib's contract (same arguments, connector pipeline, schedules,
  KL-coefficient adaptation, metrics keys) but runs the epochs itself: the masked
  rows are dropped once, the batch is shuffled once per epoch with one gather per
  column, and minibatches are contiguous views of it;
- the loss is rl.ppo_loss (RLlib's maths, checked against it by a unit test) and
  its terms are logged once per update: their means over the last epoch, which
  visits every row once with the most trained weights (RLlib logs the last
  minibatch's values only);
- Adam runs fused (foreach where fused is missing); clipping uses torch's foreach
  norms and one finiteness check of the global norm: non-finite gradients are
  zeroed (as RLlib's default does) and logged, so an update cannot poison the weights.

Anything the fast loop does not cover (several learners, Ray Data iterators, grad
scalers, torch LR schedulers, several modules) goes through RLlib's own ``update``.
The private RLlib hooks and attributes this needs are reached through rl.rllib_compat.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
)
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    MODULE_TRAIN_BATCH_SIZE_MEAN,
    NUM_ENV_STEPS_TRAINED,
    NUM_ENV_STEPS_TRAINED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.torch_utils import explained_variance

from rl.compiled import CompiledOrEager
from rl.gae import map_tree
from rl.ppo_loss import STATS, LossWeights, mean_kl, ppo_loss
from rl.rllib_compat import (
    ClipFunctionHook,
    count_weights_update,
    skips_metrics_reduce,
    train_batch,
    uses_torch_extras,
    weights_seq_no,
)

log = logging.getLogger(__name__)

_STAT_KEYS = (POLICY_LOSS_KEY, VF_LOSS_KEY, LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY, ENTROPY_KEY)
assert len(_STAT_KEYS) == len(STATS)

_COLUMNS = (
    Columns.OBS,
    Columns.ACTIONS,
    Columns.ACTION_LOGP,
    Columns.ACTION_DIST_INPUTS,
    Postprocessing.ADVANTAGES,
    Postprocessing.VALUE_TARGETS,
)
"""The batch columns the PPO loss reads; nothing else is shuffled or sliced."""


def clip_by_global_norm(
    gradients: dict | Iterable, grad_clip: float, grad_clip_by: str
) -> torch.Tensor:
    """Scale gradients in place so their global L2 norm is at most grad_clip; return the norm.

    Non-finite gradients are set to zero (the update becomes a no-op for them).
    """
    if grad_clip_by != "global_norm":
        raise ValueError("QuantumPPOLearner clips by global_norm only")
    values = gradients.values() if isinstance(gradients, dict) else gradients
    grads = [g for g in values if g is not None]
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


def _valid_rows(batch: Any) -> dict[str, Any]:
    """The loss columns without PPO's masked rows (the bootstrap timestep per chunk)."""
    data = {k: batch[k] for k in _COLUMNS if k in batch}
    mask = batch.get(Columns.LOSS_MASK)
    if mask is None or bool(mask.all()):
        return data
    index = torch.nonzero(mask, as_tuple=True)[0]
    return map_tree(data, lambda t: t.index_select(0, index))


class QuantumPPOLearner(ClipFunctionHook, PPOTorchLearner):
    """PPOTorchLearner with its own epoch/minibatch loop (module docstring)."""

    clip_function = staticmethod(clip_by_global_norm)
    """RLlib's own update path clips with it too (rl.rllib_compat.ClipFunctionHook)."""

    def build(self, **kwargs) -> None:
        super().build(**kwargs)
        self._loss_steps: dict[str, Callable] = {}

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        module = self.module[module_id]
        params = self.get_parameters(module)
        try:
            optimizer = torch.optim.Adam(params, fused=True)
        except (RuntimeError, TypeError):
            optimizer = torch.optim.Adam(params, foreach=True)
        self.register_optimizer(
            module_id=module_id, optimizer=optimizer, params=params, lr_or_lr_schedule=config.lr
        )

    def _fast_loop_applies(self, data_iterators, minibatch_size) -> bool:
        config = self.config
        return (
            not data_iterators
            and bool(minibatch_size)
            and config.num_learners <= 1
            and len(self.module) == 1
            and not uses_torch_extras(self)
            and config.grad_clip is not None
            and config.grad_clip_by == "global_norm"
        )

    def update(
        self,
        batch=None,
        batches=None,
        batch_refs=None,
        episodes=None,
        episodes_refs=None,
        data_iterators=None,
        training_data=None,
        *,
        timesteps=None,
        num_total_minibatches: int = 0,
        num_epochs: int = 1,
        minibatch_size: int | None = None,
        shuffle_batch_per_epoch: bool = False,
        **kwargs,
    ):
        """RLlib's ``Learner.update`` contract (its private ``_no_metrics_reduce`` flag
        arrives in ``kwargs``); the epochs run in ``_run_epochs``."""
        if not self._fast_loop_applies(data_iterators, minibatch_size):
            return super().update(
                batch, batches, batch_refs, episodes, episodes_refs, data_iterators,
                training_data, timesteps=timesteps, num_total_minibatches=num_total_minibatches,
                num_epochs=num_epochs, minibatch_size=minibatch_size,
                shuffle_batch_per_epoch=shuffle_batch_per_epoch, **kwargs,
            )
        if self.module is None:
            raise ValueError(
                "Learner.build() must be called after constructing a Learner and before "
                "calling any methods on it."
            )
        self.before_gradient_based_update(timesteps=timesteps or {})
        if training_data is None:
            training_data = TrainingData(
                batch=batch, batches=batches, batch_refs=batch_refs, episodes=episodes,
                episodes_refs=episodes_refs,
            )
        training_data.validate()
        training_data.solve_refs()
        count_weights_update(self)
        multi_batch = train_batch(self, training_data)
        for module_id in list(multi_batch.policy_batches):
            if not self.should_module_be_updated(module_id, multi_batch):
                del multi_batch.policy_batches[module_id]
        if not multi_batch.policy_batches:
            return {}
        ((module_id, module_batch),) = multi_batch.policy_batches.items()
        self._run_epochs(
            module_id, _valid_rows(module_batch), num_epochs, minibatch_size,
            shuffle=shuffle_batch_per_epoch,
        )
        self.after_gradient_based_update(timesteps=timesteps or {})
        if not skips_metrics_reduce(kwargs):
            return self.metrics.reduce()
        return None

    def _loss_weights(self, module_id) -> LossWeights:
        config = self.config.get_config_for_module(module_id)
        kl_coeff = float(self.curr_kl_coeffs_per_module[module_id]) if config.use_kl_loss else 0.0
        return LossWeights(
            clip_param=config.clip_param,
            vf_clip_param=config.vf_clip_param,
            vf_loss_coeff=config.vf_loss_coeff,
            entropy_coeff=self.entropy_coeff_schedulers_per_module[module_id].get_current_value(),
            kl_coeff=kl_coeff,
        )

    def _loss_step(self, module_id, module, weights: LossWeights) -> Callable:
        """forward_train + PPO loss for one minibatch: (loss, terms, values, dist inputs).

        With ``config.torch_compile_learner`` (``rollouts.compile``) it is
        torch.compile'd once per module (forward and, through AOTAutograd, backward
        become a few fused kernels: about half the time of a small CPU update, after a
        one-off compile that inductor caches on disk). If compilation fails (no C++
        compiler, an op inductor cannot lower), the eager step takes over for good,
        with a warning.
        """
        if module_id in self._loss_steps:
            return self._loss_steps[module_id]
        static = (weights.clip_param, weights.vf_clip_param, weights.vf_loss_coeff)

        def eager(mini, entropy_coeff, kl_coeff):
            fwd_out = module.forward_train(mini)
            w = LossWeights(*static, entropy_coeff=entropy_coeff, kl_coeff=kl_coeff)
            loss, terms, values = ppo_loss(module, mini, fwd_out, w)
            return loss, terms, values, fwd_out[Columns.ACTION_DIST_INPUTS]

        compile_ = self.config.torch_compile_learner
        self._loss_steps[module_id] = CompiledOrEager(eager, "the PPO loss") if compile_ else eager
        return self._loss_steps[module_id]

    def _run_epochs(self, module_id, data, num_epochs, minibatch_size, shuffle) -> None:
        """num_epochs passes over data in minibatches (the last one of a pass wraps around
        to the pass's first rows, as RLlib's cyclic iterator does); logs the results."""
        module = self.module[module_id].unwrapped()
        module.train()  # forward_train would switch it; inside a compiled step it must not
        weights = self._loss_weights(module_id)
        loss_step = self._loss_step(module_id, module, weights)
        track_kl = self.config.get_config_for_module(module_id).use_kl_loss
        optimizers = [opt for _, opt in self.get_optimizers_for_module(module_id)]
        params = [p for p in self.get_parameters(module) if p.requires_grad]
        rows = len(data[Postprocessing.ADVANTAGES])
        per_epoch = max(1, math.ceil(rows / minibatch_size))
        size = min(minibatch_size, rows)
        stats = torch.zeros(per_epoch, len(STATS))
        kls = torch.zeros(per_epoch)
        norms = torch.zeros(num_epochs * per_epoch)
        values = torch.zeros(rows)
        for epoch in range(num_epochs):
            last = epoch == num_epochs - 1
            order = torch.randperm(rows) if shuffle else torch.arange(rows)
            order = torch.cat([order, order[: per_epoch * size - rows]])
            epoch_data = map_tree(data, lambda t, o=order: t.index_select(0, o.to(t.device)))
            for k in range(per_epoch):
                start = k * size
                mini = map_tree(epoch_data, lambda t, s=start: t[s : s + size])
                loss, terms, predicted, dist_inputs = loss_step(
                    mini, weights.entropy_coeff, weights.kl_coeff
                )
                for optimizer in optimizers:
                    optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norms[epoch * per_epoch + k] = clip_by_global_norm(
                    [p.grad for p in params], self.config.grad_clip, "global_norm"
                )
                for optimizer in optimizers:
                    optimizer.step()
                if last:
                    stats[k] = terms
                    values[order[start : start + size]] = predicted.cpu()
                    if track_kl:
                        kls[k] = mean_kl(module, mini, dist_inputs)
        self._log_update(module_id, data, stats, kls if track_kl else None, norms, values, loss)
        self._log_trained(module_id, num_epochs * per_epoch, size)

    def _log_update(self, module_id, data, stats, kls, norms, values, loss) -> None:
        means = stats.mean(0)
        results = {key: means[i] for i, key in enumerate(_STAT_KEYS)}
        results[LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY] = explained_variance(
            data[Postprocessing.VALUE_TARGETS].cpu(), values
        )
        results[LEARNER_RESULTS_KL_KEY] = kls.mean() if kls is not None else torch.tensor(0.0)
        self.metrics.log_dict(results, key=module_id, window=1)
        self.metrics.log_value(
            (module_id, "gradients_default_optimizer_global_norm"), norms.mean(), window=1
        )
        self.metrics.log_value((module_id, self.TOTAL_LOSS_KEY), loss.detach(), window=1)

    def _log_trained(self, module_id, minibatches: int, size: int) -> None:
        """The steps-trained counters RLlib logs per minibatch, logged once for them all."""
        steps = minibatches * size
        log = self.metrics.log_value
        log((module_id, WEIGHTS_SEQ_NO), weights_seq_no(self), window=1)
        log((module_id, MODULE_TRAIN_BATCH_SIZE_MEAN), size, reduce="mean")
        log((module_id, NUM_MODULE_STEPS_TRAINED), steps, reduce="sum")
        log(
            (module_id, NUM_MODULE_STEPS_TRAINED_LIFETIME), steps, reduce="lifetime_sum",
            with_throughput=True,
        )
        for key, reduce in (
            (NUM_MODULE_STEPS_TRAINED, "sum"),
            (NUM_MODULE_STEPS_TRAINED_LIFETIME, "lifetime_sum"),
            (NUM_ENV_STEPS_TRAINED, "sum"),
            (NUM_ENV_STEPS_TRAINED_LIFETIME, "lifetime_sum"),
        ):
            log((ALL_MODULES, key), steps, reduce=reduce, with_throughput=True)
