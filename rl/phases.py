"""Ray Tune runs the phase schedule: one Tune experiment per phase, PBT within a phase.

For phase N, ``run_phases``:

1. builds the phase's TrainConfig (base + phases 1..N, + the previous phase's
   recommendations with ``use_recommendations``);
2. starts the policy from the best checkpoint of phase N-1 (the RLModule's weights;
   optimizers start fresh, since the hyperparameters changed);
3. runs a Tune experiment ``runs/NAME/tune/phaseN`` of ``population`` trials (PBT
   perturbing the phase's mutable keys when population > 1) until the phase's step
   budget or its early-end criteria;
4. writes ``phase{N+1}_recommendations.json`` from the best trial's results.

Every result is tagged ``quantum/phase`` and ``quantum/global_env_steps`` (the
schedule's cumulative counter: phase start + steps trained in the phase).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl import metric_keys as keys
from rl.callbacks import TradingMetricsCallback
from rl.checkpoint import module_path
from rl.config import TrainConfig, get_path
from rl.diagnose import diagnose
from rl.recommend import read_recommendations, recommend, write_recommendations
from rl.schedule import MUTABLE_KEYS, Phase, Schedule
from rl.storage import is_uri, read_text
from rl.train import flatten

log = logging.getLogger(__name__)

SCORE = "quantum/score"
"""Tune's metric: the latest validation score (rl.validation: mean return or Sharpe of
deterministic episodes on the held-out validation part), carried forward between
evaluations; without a validation part, the latest mean training episode return."""
STEPS = keys.STEPS

_ALGO_KEYS = {
    "ppo.lr": "lr",
    "ppo.entropy_coeff": "entropy_coeff",
    "ppo.clip_param": "clip_param",
    "ppo.vf_loss_coeff": "vf_loss_coeff",
    "ppo.num_epochs": "num_epochs",
}


def phase_callbacks(
    phase: int, start: int, validation_metric: str | None = "return"
) -> type[TradingMetricsCallback]:
    """Trading metrics plus the phase tags and Tune's score on every result: the
    validation ``validation_metric`` when the run validates (None: it does not, and the
    training return scores)."""

    class PhaseCallbacks(TradingMetricsCallback):
        score = -1e9
        """The latest finite score (the Algorithm holds one instance of its callbacks)."""

        def on_train_result(self, *, algorithm, result, **kwargs: Any) -> None:
            if validation_metric is not None:
                score = result.get(keys.VALIDATION_PART, {}).get(validation_metric)
            else:
                score = result.get("env_runners", {}).get("episode_return_mean")
            if score is not None and math.isfinite(score):
                self.score = float(score)
            result["quantum"] = {
                "phase": phase,
                "global_env_steps": start + int(result.get(STEPS, 0)),
                "score": self.score,
                "score_source": "training" if validation_metric is None else "validation",
            }

    return PhaseCallbacks


def best_scored_checkpoint(result):
    """The best trial's checkpoint with the highest score (SCORE: the validation metric
    when the run validates) among those it kept, not merely its last one; the last one
    when none of the kept ones carries a score."""
    scored = [
        (ckpt, metrics["quantum"]["score"])
        for ckpt, metrics in (result.best_checkpoints or [])
        if isinstance(metrics.get("quantum"), dict) and "score" in metrics["quantum"]
    ]
    if not scored:
        return result.checkpoint
    return max(scored, key=lambda pair: pair[1])[0]


def _path(key: str) -> tuple[str, ...]:
    """Where a mutable TrainConfig key lives in RLlib's (Tune's) param space."""
    if key in _ALGO_KEYS:
        return (_ALGO_KEYS[key],)
    return tuple(key.split("."))  # env_config.env.reward.<term>: the same nesting


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    for part in reversed(path):
        value = {part: value}
    return value


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _mutations(phase: Phase, config: TrainConfig) -> dict[str, Any]:
    """PBT's hyperparam_mutations for the phase's mutable keys, nested as in the param
    space: resampling stays within a band around the phase's own value (x/4..x4 for the
    learning rate, 0..x3 for the entropy bonus and reward weights, x0.5..x1.5
    otherwise), clipped to MUTABLE_KEYS."""
    from ray import tune

    out: dict[str, Any] = {}
    for key in phase.mutable:
        lo, hi = MUTABLE_KEYS[key]
        value = config.value(key) or 0.0
        if key == "ppo.lr":
            domain = tune.loguniform(max(lo, value / 4), min(hi, value * 4))
        elif key == "ppo.num_epochs":
            domain = tune.randint(max(int(lo), value // 2), min(int(hi), value * 2) + 1)
        elif key == "ppo.entropy_coeff" or key.startswith("env_config."):
            domain = tune.uniform(lo, min(hi, max(3 * value, 1e-3)))
        else:
            domain = tune.uniform(max(lo, value / 2), min(hi, value * 1.5))
        _merge(out, _nest(_path(key), domain))
    return out


def with_mutable_defaults(phase: Phase, config: TrainConfig) -> TrainConfig:
    """The config with every mutable env key present (PBT perturbs existing keys only)."""
    missing = {
        key: 0.0
        for key in phase.mutable
        if key.startswith("env_config.") and config.value(key) is None
    }
    return config.with_overrides(**missing) if missing else config


def keep_valid(config: dict[str, Any]) -> dict[str, Any]:
    """PBT's custom_explore_fn: clamp every perturbed value into its allowed range."""
    for key, (lo, hi) in MUTABLE_KEYS.items():
        path = _path(key)
        value = get_path(config, path)
        if not isinstance(value, int | float):
            continue
        value = min(max(value, lo), hi)
        node = config
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = round(value) if key == "ppo.num_epochs" else float(value)
    return config


_EVIDENCE = (
    keys.TRADING, keys.EPISODE_RETURN, "quantum/", STEPS, keys.ENTROPY, keys.VF_LOSS,
    keys.VF_EXPLAINED_VAR, keys.MEAN_KL, keys.POLICY_LOSS, keys.REWARD_ABS_MEAN,
    keys.ENTROPY_COEFF, "training_iteration",
)


def _evidence(row: dict[str, float]) -> dict[str, float]:
    """The metrics the recommendations read (Tune's frames also hold the whole config)."""
    return {k: v for k, v in row.items() if k.startswith(_EVIDENCE)}


def pbt_lineage(experiment: str | Path) -> list[dict[str, Any]]:
    """Who copied whom with which new hyperparameters, from PBT's pbt_global.txt log
    (one JSON line per exploit: target, source, their iterations, old and new config);
    ``experiment`` is a path or a storage URI."""
    text = read_text(f"{str(experiment).rstrip('/')}/pbt_global.txt")
    if text is None:
        return []
    events = []
    for line in text.splitlines():
        target, source, target_iter, source_iter, old, new = json.loads(line)
        changed = {
            ".".join(_path(key)): [get_path(old, _path(key)), get_path(new, _path(key))]
            for key in MUTABLE_KEYS
            if get_path(old, _path(key)) != get_path(new, _path(key))
        }
        events.append(
            {
                "trial": target, "copied": source, "trial_iteration": target_iter,
                "source_iteration": source_iter, "changed": changed,
            }
        )
    return events


def _tracking(config: TrainConfig, out: Path, number: int) -> list:
    """Tune's W&B logger (one W&B run per trial, grouped by run and phase), if enabled."""
    if not config.tracking.wandb:
        return []
    from ray.air.integrations.wandb import WandbLoggerCallback

    from rl.rllib_compat import CLASS_CONFIG_KEYS
    from rl.tracking import wandb_mode

    return [
        WandbLoggerCallback(
            project=config.tracking.project,
            group=config.tracking.group or out.name,
            tags=[f"phase{number}"],
            mode=wandb_mode(),
            dir=str((out / "wandb").resolve()),
            # the logged config is RLlib's algorithm config: no credentials live there
            # (exchange keys come from the environment), and the callbacks/spec objects
            # are left out
            excludes=["callbacks", "env_runner_cls", *CLASS_CONFIG_KEYS],
        )
    ]


@dataclass(frozen=True)
class PhaseResult:
    number: int
    name: str
    best_checkpoint: Path
    global_env_steps: int
    trials: list[dict[str, Any]]
    recommendations: Path | None
    lineage: list[dict[str, Any]]


def _run_phase(
    number: int,
    phase: Phase,
    schedule: Schedule,
    config: TrainConfig,
    out: Path,
    population: int,
    init_module: Path | None,
    resume: bool,
    max_concurrent: int | None = None,
    storage_path: str | None = None,
) -> PhaseResult:
    from ray import tune
    from ray.rllib.algorithms.ppo import PPO
    from ray.tune.schedulers import PopulationBasedTraining

    from rl.algo import ppo_config

    config = with_mutable_defaults(phase, config) if population > 1 else config
    start = schedule.start_of(number)
    budget = phase.until_steps - start
    trials = min(population, max_concurrent or population)
    metric = config.validation.metric if config.validates else None
    param_space = ppo_config(
        config, init_module, trials=trials, callbacks=phase_callbacks(number, start, metric)
    )
    scheduler = None
    if population > 1:
        scheduler = PopulationBasedTraining(
            time_attr=STEPS,
            perturbation_interval=max(config.ppo.train_batch_size, budget // 4),
            hyperparam_mutations=_mutations(phase, config),
            custom_explore_fn=keep_valid,
            quantile_fraction=0.5 if population < 4 else 0.25,
            log_config=True,
            # synchronous: at each perturbation point the whole population has reported,
            # so the bottom quantile always exploits the top (asynchronous PBT skips a
            # trial whose peers have not reached the point yet; small populations then
            # often skip every exploit)
            synch=True,
        )

    def stop(trial_id: str, result: dict) -> bool:
        steps = int(result.get(STEPS, 0))
        return steps >= budget or phase.criteria.met(steps, flatten(result))

    storage = storage_path or str((out / "tune").resolve())
    experiment = f"{storage.rstrip('/')}/phase{number}"
    if resume and tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable=PPO, resume_errored=True)
    else:
        tuner = tune.Tuner(
            PPO,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=SCORE,
                mode="max",
                num_samples=population,
                scheduler=scheduler,
                max_concurrent_trials=max_concurrent,
            ),
            run_config=tune.RunConfig(
                name=f"phase{number}",
                storage_path=storage,
                stop=stop,
                checkpoint_config=tune.CheckpointConfig(
                    checkpoint_frequency=config.checkpoint_every,
                    checkpoint_at_end=True,
                    # PBT exploits copy other trials' checkpoints: keep a few more; a
                    # single trial keeps its best-scoring (validation) ones
                    num_to_keep=2 if population == 1 else 4,
                    checkpoint_score_attribute=SCORE if population == 1 else None,
                ),
                failure_config=tune.FailureConfig(max_failures=2),
                callbacks=_tracking(config, out, number),
                verbose=0,
            ),
        )
    grid = tuner.fit()
    best = grid.get_best_result(metric=SCORE, mode="max", scope="last")
    best_checkpoint = best_scored_checkpoint(best)
    if best_checkpoint is None:
        raise RuntimeError(f"phase {number}: the best trial left no checkpoint")
    trials = [
        {
            "trial": r.path.rsplit("/", 1)[-1],
            "score": (r.metrics or {}).get("quantum", {}).get("score"),
            "env_steps": (r.metrics or {}).get(STEPS),
            "config": {k: r.config.get(k) for k in _ALGO_KEYS.values() if k in r.config},
            "error": str(r.error) if r.error else None,
        }
        for r in grid
    ]
    frame = best.metrics_dataframe
    rows = [] if frame is None else [_evidence(flatten(m)) for m in frame.to_dict("records")]
    recs_path = None
    if number < len(schedule.phases):
        next_config = schedule.config_for(number + 1, config)
        recs = recommend(rows, next_config)
        recs_path = out / f"phase{number + 1}_recommendations.json"
        findings = diagnose(rows, config.ppo.entropy_coeff)
        write_recommendations(
            recs_path, number + 1, recs, rows[-1] if rows else {},
            diagnosis=[{"name": f.name, "value": f.value, "message": f.message} for f in findings],
        )
    best_path = Path(best_checkpoint.path)
    if is_uri(storage):  # the next phase and the summary need a local copy
        best_path = Path(best_checkpoint.to_directory(str(out / "best" / f"phase{number}")))
    return PhaseResult(
        number, phase.name, best_path, phase.until_steps, trials, recs_path,
        pbt_lineage(experiment),
    )


def run_phases(
    schedule: Schedule,
    phases: str,
    base: TrainConfig,
    out: Path,
    *,
    population: int = 1,
    use_recommendations: bool = False,
    resume: bool = False,
    max_concurrent: int | None = None,
    storage_path: str | None = None,
) -> list[PhaseResult]:
    """Run the selected phases in order (see module docstring); returns each phase's result.

    ``max_concurrent`` caps trials running at once (default: as the cluster's resources
    allow); ``storage_path`` (a shared path or URI, rl.storage) replaces OUT/tune as
    Tune's storage, which a multi-node cluster needs.

    Phases already finished in ``out`` (their summary in phases.json) are skipped on
    ``resume``; the first selected phase after phase 1 continues from the best checkpoint
    recorded for its predecessor.
    """
    from cluster.runtime import init_ray

    out.mkdir(parents=True, exist_ok=True)
    base = base.with_store_tiers()
    summary_path = out / "phases.json"
    done: dict[str, dict] = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if done and not resume:
        raise FileExistsError(f"{out} already holds phases; use --resume or a new --out")
    init_ray()
    results = []
    for number, phase in schedule.select(phases):
        if str(number) in done:
            log.info("phase %d already finished, skipped", number)
            continue
        previous = done.get(str(number - 1))
        if number > 1 and previous is None:
            raise FileNotFoundError(
                f"phase {number} continues phase {number - 1}, which has no result in {out}"
            )
        init = module_path(Path(previous["best_checkpoint"])) if previous else None
        recs_file = out / f"phase{number}_recommendations.json"
        extra = (
            read_recommendations(recs_file) if use_recommendations and recs_file.exists() else {}
        )
        config = schedule.config_for(number, base, extra)
        result = _run_phase(
            number, phase, schedule, config, out, population, init, resume,
            max_concurrent, storage_path,
        )
        done[str(number)] = {
            "name": result.name,
            "best_checkpoint": str(result.best_checkpoint),
            "global_env_steps": result.global_env_steps,
            "trials": result.trials,
            "pbt_lineage": result.lineage,
            "applied_recommendations": extra,
        }
        tmp = summary_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(done, indent=2, sort_keys=True))
        tmp.replace(summary_path)
        results.append(result)
    if base.tracking.wandb and results:
        _log_summary(base, out, results)
    return results


def _log_summary(base: TrainConfig, out: Path, results: list[PhaseResult]) -> None:
    """One W&B run with the phases' best scores and the PBT lineage as tables."""
    import wandb

    from rl.tracking import Tracker

    (out / "wandb").mkdir(exist_ok=True)
    tracker = Tracker(out, base.tracking.project, {"phases": [r.name for r in results]},
                      group=base.tracking.group or out.name, tags=("summary",))
    try:
        phases = wandb.Table(columns=["phase", "name", "global_env_steps", "best_score"])
        for r in results:
            best = max((t["score"] for t in r.trials if t["score"] is not None), default=None)
            phases.add_data(r.number, r.name, r.global_env_steps, best)
        lineage = wandb.Table(columns=["phase", "trial", "copied", "iteration", "changed"])
        for r in results:
            for e in r.lineage:
                lineage.add_data(
                    r.number, e["trial"], e["copied"], e["trial_iteration"],
                    json.dumps(e["changed"]),
                )
        tracker.run.log({"phases": phases, "pbt_lineage": lineage})
    finally:
        tracker.finish()
