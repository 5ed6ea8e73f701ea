"""The one place Quantum reaches into RLlib's private API (Ray 2.60, see constraints.txt).

rl/env_runner.py (batched sampling) and rl/learner.py (the PPO epoch loop) replace two
of RLlib's inner loops. Ray 2.60 has no public extension point for either: the loops
are private methods, and the bookkeeping around them (episode metrics, step counters,
the weights sequence number) lives in private attributes. Those uses are all here,
behind public-named functions, each with why it is needed and why no public API does.

``PRIVATE_SURFACE`` lists every private name this module touches, as data:
(owner, name, parameters), the owner written ``"module:Class"`` and ``parameters`` the
names of a callable's parameters (``self`` left out) or None for an attribute.
tests/unit/test_private_surface.py checks each against the installed Ray (methods by
signature, instance attributes by the owner's ``__init__`` source) and checks that this
module's source uses no private name the list lacks, so a Ray upgrade that renames one
fails that test by name rather than a training run by AttributeError.

Where Ray 2.60 does offer a public equivalent, the callers use it instead:
``Learner.module`` (not ``Learner._module``), a ``module is None`` check (not
``Learner._check_is_built``), the public component names ``ray.rllib.core.COMPONENT_*``
for the checkpoint layout, and ``SingleAgentEpisode``'s own constructor for everything
but the lookback buffers (see ``lookback_buffer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ray.rllib.core import (
    COMPONENT_LEARNER,
    COMPONENT_LEARNER_GROUP,
    COMPONENT_RL_MODULE,
    DEFAULT_MODULE_ID,
)
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer

RLLIB_RUNNER = "ray.rllib.env.single_agent_env_runner:SingleAgentEnvRunner"
RLLIB_CONFIG = "ray.rllib.algorithms.algorithm_config:AlgorithmConfig"
RLLIB_LEARNER = "ray.rllib.algorithms.ppo.torch.ppo_torch_learner:PPOTorchLearner"
SAMPLE_PARAMS = ("num_timesteps", "num_episodes", "explore", "random_actions", "force_reset")

PRIVATE_SURFACE: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    # EnvRunner: the sampling loop hook and the bookkeeping RLlib's loop does at its end
    (RLLIB_RUNNER, "_sample", SAMPLE_PARAMS),
    (RLLIB_RUNNER, "_needs_initial_reset", None),
    (RLLIB_RUNNER, "_seed", None),
    (RLLIB_RUNNER, "_ongoing_episodes_for_metrics", None),
    (RLLIB_RUNNER, "_done_episodes_for_metrics", None),
    (RLLIB_RUNNER, "_log_env_steps", ("metric", "num_steps")),
    (RLLIB_RUNNER, "_metrics_num_env_steps_sampled", None),
    (RLLIB_RUNNER, "_increase_sampled_metrics", ("num_steps", "num_episodes_completed")),
    # AlgorithmConfig: custom connectors, and the to_dict() keys that hold classes
    (RLLIB_CONFIG, "_env_to_module_connector", None),
    (RLLIB_CONFIG, "_module_to_env_connector", None),
    (RLLIB_CONFIG, "_rl_module_spec", None),
    (RLLIB_CONFIG, "_learner_class", None),
    # Learner: the clip-function hook, update()'s private flag and the update bookkeeping
    (RLLIB_LEARNER, "_get_clip_function", ()),
    (
        RLLIB_LEARNER,
        "update",
        (
            "batch", "batches", "batch_refs", "episodes", "episodes_refs", "data_iterators",
            "training_data", "timesteps", "num_total_minibatches", "num_epochs",
            "minibatch_size", "shuffle_batch_per_epoch", "_no_metrics_reduce", "kwargs",
        ),
    ),
    (RLLIB_LEARNER, "_grad_scalers", None),
    (RLLIB_LEARNER, "_lr_scheduler_classes", None),
    (RLLIB_LEARNER, "_weights_seq_no", None),
    (RLLIB_LEARNER, "_make_batch_if_necessary", ("training_data",)),
    # DeveloperAPI, not private, but outside RLlib's public stability promise
    (
        "ray.rllib.env.utils.infinite_lookback_buffer:InfiniteLookbackBuffer",
        "__init__",
        ("data", "lookback", "space"),
    ),
)
"""Every private RLlib name used here: (owner "module:Class", name, parameter names or
None for an attribute). Checked by tests/unit/test_private_surface.py."""


# ---------------------------------------------------------------- EnvRunner


class SampleHookEnvRunner(SingleAgentEnvRunner):
    """A SingleAgentEnvRunner whose sampling loop a subclass replaces in ``sample_episodes``.

    RLlib's public ``sample()`` does the work around the loop (timers, the weights
    sequence number, the env-runner state server, the default ``num_timesteps`` from the
    rollout fragment length) and calls the private ``_sample`` for the loop itself. Ray
    2.60 has no public hook for the loop (overriding ``sample()`` would mean copying all
    of that), so this class overrides ``_sample`` and forwards to ``sample_episodes``.
    """

    def _sample(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list:
        return self.sample_episodes(
            num_timesteps=num_timesteps, num_episodes=num_episodes, explore=explore,
            random_actions=random_actions, force_reset=force_reset,
        )

    def sample_episodes(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list:
        """The sampling loop (RLlib's ``_sample`` contract); by default RLlib's own."""
        return self.rllib_sample(
            num_timesteps=num_timesteps, num_episodes=num_episodes, explore=explore,
            random_actions=random_actions, force_reset=force_reset,
        )

    def rllib_sample(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list:
        """RLlib's own sampling loop (SingleAgentEnvRunner._sample)."""
        return super()._sample(
            num_timesteps=num_timesteps, num_episodes=num_episodes, explore=explore,
            random_actions=random_actions, force_reset=force_reset,
        )


def connectors_are_default(config: Any) -> bool:
    """Whether the AlgorithmConfig leaves both env-runner connector pipelines at RLlib's
    defaults (no ``env_runners(env_to_module_connector=..., module_to_env_connector=...)``).

    Private: the factories are stored as ``_env_to_module_connector`` and
    ``_module_to_env_connector``; AlgorithmConfig has no public getter for them (only
    ``build_*_connector``, which builds the whole pipeline, defaults included).
    """
    return config._env_to_module_connector is None and config._module_to_env_connector is None


def mark_needs_reset(runner: SingleAgentEnvRunner) -> None:
    """Make RLlib's own loop reset (and seed) the envs the next time it runs.

    Private: ``_needs_initial_reset``. The public ``sample(force_reset=True)`` resets
    too, but without the seeding the flag triggers, and it is the caller's choice.
    """
    runner._needs_initial_reset = True


def runner_seed(runner: SingleAgentEnvRunner) -> int | None:
    """The seed RLlib's loop passes to the envs' first reset on this runner.

    Private: ``EnvRunner._seed``. It is derivable from public settings (``config.seed``
    + worker index + 1e6 for evaluation runners), but that rule is RLlib's own and
    may change; reading it keeps both loops seeding alike.
    """
    return runner._seed


def forget_ongoing_episodes(runner: SingleAgentEnvRunner) -> None:
    """Drop the episode chunks kept for metrics of episodes still running (after a reset
    their continuations will never come), as RLlib's own reset does.

    Private: ``_ongoing_episodes_for_metrics``; no public API.
    """
    runner._ongoing_episodes_for_metrics.clear()


def record_episodes(
    runner: SingleAgentEnvRunner, done: Iterable[Any], ongoing: Iterable[Any]
) -> None:
    """Hand sampled episode chunks to the runner's ``get_metrics()`` bookkeeping, as
    RLlib's loop does at its end: ``done`` finished ones, ``ongoing`` chunks of
    episodes that continue in the next sample.

    Private: ``_done_episodes_for_metrics`` and ``_ongoing_episodes_for_metrics``, which
    the public ``get_metrics()`` reads; no public API fills them.
    """
    runner._done_episodes_for_metrics.extend(done)
    for episode in ongoing:
        runner._ongoing_episodes_for_metrics[episode.id_].append(episode)


def log_sampled_steps(runner: SingleAgentEnvRunner, num_steps: int, num_done: int) -> None:
    """Count ``num_steps`` sampled env steps and ``num_done`` finished episodes in the
    runner's Prometheus counter and metrics, as RLlib's loop does at its end.

    Private: ``_log_env_steps``, ``_metrics_num_env_steps_sampled`` and
    ``_increase_sampled_metrics``. The metric keys are public, but reimplementing the
    latter would fork RLlib's list of counters; no public API.
    """
    runner._log_env_steps(metric=runner._metrics_num_env_steps_sampled, num_steps=num_steps)
    runner._increase_sampled_metrics(num_steps, num_done)


def lookback_buffer(data: Any) -> InfiniteLookbackBuffer:
    """A finished episode column with no lookback, for ``SingleAgentEpisode(...)``.

    InfiniteLookbackBuffer is a DeveloperAPI (no stability promise). The public
    alternative, passing arrays to ``SingleAgentEpisode`` and letting it wrap them,
    would give the rewards buffer RLlib's float32 reward space, which changes how the
    buffer fills and checks values (``get(..., fill=...)``, ``set_*``); wrapping here
    keeps the buffers exactly as the batched runner has always built them.
    """
    return InfiniteLookbackBuffer(data=data, lookback=0)


# ---------------------------------------------------------------- Learner


class ClipFunctionHook:
    """Mixin, listed before RLlib's Learner base: the Learner's gradient clipping on
    RLlib's own update path becomes the class's ``clip_function``
    (``staticmethod(fn)`` with RLlib's signature ``fn(gradients, grad_clip, grad_clip_by)``).

    Private: RLlib asks the static ``_get_clip_function`` hook for it; ``config.grad_clip_by``
    only picks among RLlib's own modes, so no public setting does this.
    """

    clip_function: Callable

    @classmethod
    def _get_clip_function(cls) -> Callable:
        return cls.clip_function


def uses_torch_extras(learner: Any) -> bool:
    """Whether the TorchLearner runs mixed-precision grad scalers or torch LR schedulers
    (``config.experimental(_torch_grad_scaler_class=..., _torch_lr_scheduler_classes=...)``).

    Private: ``_grad_scalers`` and ``_lr_scheduler_classes``; the config fields they come
    from are private too, so no public API.
    """
    return learner._grad_scalers is not None or learner._lr_scheduler_classes is not None


def skips_metrics_reduce(update_kwargs: Mapping[str, Any]) -> bool:
    """Whether the caller of ``Learner.update`` asked it not to reduce its metrics (the
    LearnerGroup does, to reduce across updates itself).

    Private: ``update``'s ``_no_metrics_reduce`` parameter, which an override must honour.
    """
    return bool(update_kwargs.get("_no_metrics_reduce", False))


def count_weights_update(learner: Any) -> int:
    """Count one more update of the learner's weights (as ``Learner.update`` does first
    thing); the new sequence number.

    Private: ``_weights_seq_no``. ``get_state()`` reports it, but nothing public sets it
    short of a full ``set_state``.
    """
    learner._weights_seq_no += 1
    return learner._weights_seq_no


def weights_seq_no(learner: Any) -> int:
    """The learner's weights sequence number (see ``count_weights_update``)."""
    return learner._weights_seq_no


def train_batch(learner: Any, training_data: Any) -> Any:
    """The MultiAgentBatch of a (validated, refs-solved) ``TrainingData``: episodes through
    the learner connector, batches as they are, on the learner's device.

    Private: ``_make_batch_if_necessary``; the public ``update`` runs it inside its own
    minibatch loop, which the fast loop replaces, so no public API.
    """
    return learner._make_batch_if_necessary(training_data=training_data)


# ---------------------------------------------------------------- AlgorithmConfig / checkpoints

CLASS_CONFIG_KEYS = ("_rl_module_spec", "_learner_class")
"""``AlgorithmConfig.to_dict()`` keys that hold objects rather than settings (the RLModule
spec, the Learner class): left out of what trackers log. Private attribute names, which
``to_dict`` copies as they are; no public list of them."""


def algorithm_module_dir(checkpoint: Path, module_id: str = DEFAULT_MODULE_ID) -> Path:
    """Where an Algorithm checkpoint (``Algorithm.save_to_path``) keeps an RLModule:
    ``learner_group/learner/rl_module/<module_id>``, loadable with
    ``RLModule.from_checkpoint``.

    Built from RLlib's public component names; the nesting itself is RLlib's
    Checkpointable layout, which has no public path function in Ray 2.60.
    """
    return (
        Path(checkpoint)
        / COMPONENT_LEARNER_GROUP
        / COMPONENT_LEARNER
        / COMPONENT_RL_MODULE
        / module_id
    )
