"""The training loop: build PPO, train to a step budget, checkpoint, record, track.

A run folder holds everything about one run:

    runs/NAME/
      config.yaml          the TrainConfig (edit and pass to --config to start a variant)
      manifest.json        reproducibility manifest (rl.manifest)
      results.jsonl        one line per iteration: flattened numeric RLlib results
      checkpoints/iter_000010/   Algorithm checkpoints (RLlib's save_to_path layout; the
                                 RLModule alone loads with rl.checkpoint.load_module)
      checkpoints/final -> the last one, checkpoints/best -> the best validated one
      placement.json       which node and process each EnvRunner ran on, steps sampled
      wandb/               the W&B run (offline unless a key is configured)

Checkpoints are written to a temporary folder and renamed, so a crash mid-save
never leaves a half checkpoint that ``--resume`` would pick up. Reading a run back
(backtests, serving, live trading) goes through rl.checkpoint.TrainedRun.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cluster.runtime import init_ray
from rl import metric_keys as keys
from rl.checkpoint import RunPaths, latest_checkpoint, module_path
from rl.config import TrainConfig
from rl.diagnose import Finding, diagnose

log = logging.getLogger(__name__)

def flatten(result: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric scalars of a nested RLlib result as {'a/b/c': value} (config dropped)."""
    out: dict[str, float] = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if key == "config":
            continue
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}/"))
        elif isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, int | float) or hasattr(value, "item"):
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                out[name] = number
    return out


def _save(algo, paths: RunPaths, iteration: int) -> Path:
    target = paths.checkpoints / f"iter_{iteration:06d}"
    tmp = paths.checkpoints / f".tmp_iter_{iteration:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(str(tmp.resolve()))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    _link(paths.final, target)
    return target


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target.name)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports: where it is and its last metrics."""

    run_dir: Path
    checkpoint: Path
    iterations: int
    env_steps: int
    last: dict[str, float]
    """The latest value of every metric (episode metrics from the last iteration that
    finished an episode)."""
    first: dict[str, float] = field(default_factory=dict)
    """The first value of every metric this run (what ``last`` is compared with)."""
    findings: tuple[Finding, ...] = ()
    """Signs that training is not learning (rl.diagnose), from every iteration's metrics."""
    best: Path | None = None
    """The checkpoint with the best validation score (None: the run did not validate)."""
    best_validation: dict[str, float] = field(default_factory=dict)
    """The validation metrics of ``best`` (rl.validation)."""


def train(
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    on_result: Callable[[dict[str, float]], None] | None = None,
    max_iterations: int | None = None,
    init_module: Path | None = None,
    storage_path: str | None = None,
) -> TrainResult:
    """Train until ``config.steps`` env steps (lifetime, so a resumed run continues).

    ``on_result`` gets each iteration's flattened metrics (the CLI's progress bar).
    ``max_iterations`` stops earlier (tests, manifest reruns). ``init_module`` (an
    Algorithm or RLModule checkpoint) starts the policy from trained weights with this
    config's hyperparameters (``quantum train --continue-from``). ``storage_path`` (a
    path or cloud URI, rl.storage) receives a copy of the run folder, as
    ``STORAGE/NAME``, after every checkpoint.
    """
    from envs.registry import market_for
    from rl.algo import ppo_config
    from rl.manifest import build_manifest, write_manifest
    from rl.splits import check_parts
    from rl.storage import mirror
    from rl.tracking import Tracker

    paths = RunPaths(Path(out))
    remote = f"{storage_path.rstrip('/')}/{paths.root.name}" if storage_path else None
    previous = latest_checkpoint(paths) if resume else None
    if resume and previous is None:
        raise FileNotFoundError(f"--resume: no checkpoint under {paths.checkpoints}")
    if not resume and paths.results.exists():
        raise FileExistsError(f"{paths.root} already holds a run; use --resume or a new --out")
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    config = config.with_store_tiers()
    data = market_for(config.env_config)
    check_parts(config)
    paths.config.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    write_manifest(paths.manifest, build_manifest(config, data))

    init_ray()
    if init_module is not None:
        init_module = module_path(init_module)
    algo = ppo_config(config, init_module).build_algo()
    tracker = None
    try:
        if previous is not None:
            algo.restore_from_path(str(previous.resolve()))
            log.info("resumed from %s", previous)
        if config.tracking.wandb:
            tracker = Tracker(
                paths.root, config.tracking.project, config.model_dump(mode="json"),
                group=config.tracking.group,
            )
        row: dict[str, float] = {}
        rows: list[dict[str, float]] = []
        first: dict[str, float] = {}  # first seen value of every metric
        latest: dict[str, float] = {}  # last seen value of every metric (some skip iterations)
        iterations = int(algo.iteration)
        steps = 0
        done_iterations = 0
        metric = keys.validation(config.validation.metric)
        best: Path | None = paths.best.resolve() if resume and paths.best.exists() else None
        best_validation: dict[str, float] = {}
        while steps < config.steps and (max_iterations is None or done_iterations < max_iterations):
            row = flatten(algo.train())
            iterations, done_iterations = int(algo.iteration), done_iterations + 1
            steps = int(row.get(keys.STEPS, row.get(f"env_runners/{keys.STEPS}", 0)))
            row[keys.STEPS_PER_S] = row.get("env_runners/num_env_steps_sampled", 0) / max(
                row.get("time_this_iter_s", 1e-9), 1e-9
            )
            latest.update(row)
            for key, value in row.items():
                first.setdefault(key, value)
            rows.append(row)
            with paths.results.open("a") as f:
                f.write(json.dumps(row, sort_keys=True) + "\n")
            if tracker is not None:
                tracker.log(row, step=steps)
            if on_result is not None:
                on_result(latest)
            saved = None
            if iterations % config.checkpoint_every == 0:
                saved = _save(algo, paths, iterations)
            if row.get(keys.validation(keys.FRESH)) == 1.0 and (
                not best_validation or row[metric] > best_validation[metric]
            ):
                best = saved or _save(algo, paths, iterations)
                best_validation = {k: v for k, v in row.items() if k.startswith(keys.VALIDATION)}
                _link(paths.best, best)
            if saved is not None and remote:
                mirror(paths.root, remote)
        checkpoint = _save(algo, paths, iterations)
        _write_placement(algo, paths)
        if tracker is not None:
            tracker.summary({k: latest[k] for k in keys.SUMMARY if k in latest})
        if remote:
            mirror(paths.root, remote)
        findings = tuple(diagnose(rows, config.ppo.entropy_coeff))
        for finding in findings:
            log.warning("diagnosis: %s", finding.message)
        return TrainResult(
            paths.root, checkpoint, iterations, steps, latest, first, findings, best,
            best_validation,
        )
    finally:
        if tracker is not None:
            tracker.finish()
        algo.stop()


def _write_placement(algo, paths: RunPaths) -> list[dict[str, Any]]:
    """Record where each EnvRunner ran (the driver's own runner when there are no remote
    ones) and how many env steps it sampled, in placement.json and the log."""
    group = algo.env_runner_group
    remote = group.num_remote_env_runners() > 0
    rows = group.foreach_env_runner(lambda runner: runner.placement(), local_env_runner=not remote)
    rows = sorted((r for r in rows if r), key=lambda r: r["worker_index"])
    (paths.root / "placement.json").write_text(json.dumps(rows, indent=2))
    for row in rows:
        log.info("env runner %(worker_index)s on node %(node_id)s (%(host)s, pid %(pid)s): "
                 "%(env_steps_sampled)s env steps", row)
    return rows
