"""`quantum train`: PPO with the hierarchical model on a local Ray instance or RAY_ADDRESS."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rl import metric_keys as keys
from rl.checkpoint import RunPaths
from rl.cli_input import check_env, check_run_folder, read_config, store_market, user_errors
from rl.config import VALIDATION_METRICS, TrainConfig
from rl.train import TrainResult, train

console = Console()
log = logging.getLogger(__name__)


RUNNERS_HELP = "Remote EnvRunner actors, or 'auto': one per CPU the Ray cluster has spare."
LEARNERS_HELP = "Remote learners (0 = learn in the driver); more for multi-GPU."
STORAGE_HELP = "Also keep the run at this path or URI (s3://, gs://, ...): STORAGE/NAME."
DATA_HELP = "Market store (quantum data ...); default: the synthetic market, in memory."
EXCHANGE_HELP = "Exchange of the --data store (default: the only one it holds)."


def load_config(
    config: str,
    *,
    data: Path | None = None,
    exchange: str | None = None,
    steps: int | None = None,
    env_runners: str | None = None,
    envs_per_runner: int | None = None,
    model: str | None = None,
    seed: int | None = None,
    wandb: bool | None = None,
    learners: int | None = None,
    gpus_per_learner: float | None = None,
    compile_: bool | None = None,
) -> TrainConfig:
    """``defaults`` or a YAML file, then the command-line overrides on top."""
    base = read_config(config)
    overrides: dict[str, Any] = {
        "steps": steps,
        "rollouts.env_runners": env_runners,
        "rollouts.envs_per_runner": envs_per_runner,
        "rollouts.num_learners": learners,
        "rollouts.gpus_per_learner": gpus_per_learner,
        "rollouts.compile": compile_,
        "model.kind": model,
        "seed": seed,
        "tracking.wandb": wandb,
    }
    if data is not None:
        env_config = dict(base.env_config)
        for key in ("synthetic_days", "synthetic_seed"):
            env_config.pop(key, None)
        env_config["data_dir"] = str(data)
        overrides["env_config"] = env_config
    if exchange is not None:
        overrides["env_config"] = {**overrides.get("env_config", base.env_config),
                                   "exchange": exchange}
    return base.with_overrides(**{k: v for k, v in overrides.items() if v is not None})


def parse_sets(items: list[str]) -> dict[str, Any]:
    """['ppo.lr=1e-4', 'env_config.env.episode_steps=240'] -> typed overrides (YAML values)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set needs KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or err
            raise ValueError(f"--set {item}: the value is not YAML ({problem})") from err
    return out


def summary_table(result: TrainResult) -> Table:
    table = Table(title=f"{result.run_dir.name}: {result.env_steps:,} env steps", show_header=True)
    table.add_column("metric")
    table.add_column("first", justify="right")
    table.add_column("latest", justify="right")
    for key in keys.SUMMARY:
        if key in result.last:
            start = result.first.get(key)
            shown = "" if start is None else f"{start:,.4g}"
            part = "training " if key.startswith("env_runners/") else ""
            table.add_row(part + key.split("/", 1)[-1], shown, f"{result.last[key]:,.4g}")
    for key in VALIDATION_METRICS:  # held out: what selected the best checkpoint
        name = keys.validation(key)
        if name in result.last:
            best = result.best_validation.get(name)
            table.add_row(
                f"validation {key} (latest; best checkpoint)",
                "",
                f"{result.last[name]:,.4g}; {best:,.4g}" if best is not None else "",
            )
    table.add_row("checkpoint", "", str(result.checkpoint))
    if result.best is not None:
        table.add_row("best checkpoint (validation)", "", str(result.best))
    return table


def print_diagnosis(result: TrainResult) -> None:
    """The training summary's diagnosis (rl.diagnose): what the curves say, or that the
    three failure signs are absent."""
    if not result.findings:
        console.print("diagnosis: no sign of a run that is not learning (entropy bonus, "
                      "turnover and value-function checks passed)")
    for finding in result.findings:
        console.print(f"[yellow]diagnosis[/]: {finding.message}")


def train_command(
    config: Annotated[
        str, typer.Option(help="A TrainConfig YAML file, or 'defaults'.")
    ] = "defaults",
    data: Annotated[Path | None, typer.Option(help=DATA_HELP)] = None,
    exchange: Annotated[str | None, typer.Option(help=EXCHANGE_HELP)] = None,
    steps: Annotated[int | None, typer.Option(help="Env steps to train for (total).")] = None,
    env_runners: Annotated[str | None, typer.Option(help=RUNNERS_HELP)] = None,
    envs_per_runner: Annotated[
        int | None, typer.Option(help="Envs stepped together in each EnvRunner.")
    ] = None,
    learners: Annotated[int | None, typer.Option(help=LEARNERS_HELP)] = None,
    gpus_per_learner: Annotated[float | None, typer.Option(help="GPUs per learner.")] = None,
    compile_: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile sampling and updates (rollouts.compile): faster long runs "
            "after a one-off compile of 15-75 s.",
        ),
    ] = None,
    storage_path: Annotated[str | None, typer.Option(help=STORAGE_HELP)] = None,
    model: Annotated[str | None, typer.Option(help="'hierarchical' or 'mlp'.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for RLlib, torch and the envs.")] = None,
    out: Annotated[Path, typer.Option(help="Run folder.")] = Path("runs/train"),
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its latest checkpoint.")
    ] = False,
    from_manifest: Annotated[
        Path | None,
        typer.Option(help="Rerun the config recorded in a run's manifest.json (checks data)."),
    ] = None,
    iterations: Annotated[
        int | None, typer.Option(help="Stop after this many iterations (e.g. a rerun check).")
    ] = None,
    wandb: Annotated[
        bool | None, typer.Option("--wandb/--no-wandb", help="Track in W&B (offline by default).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override any config key: --set ppo.lr=1e-4 (repeatable)."),
    ] = None,
    continue_from: Annotated[
        Path | None,
        typer.Option(help="Start from a trained checkpoint's policy, with this run's settings."),
    ] = None,
    recalibrate_value: Annotated[
        int,
        typer.Option(
            help="With --continue-from: first train only the value head for this many "
            "iterations (policy frozen), then continue from the recalibrated checkpoint."
        ),
    ] = 0,
) -> None:
    """Train the hierarchical PPO policy and print a summary (see README: Training)."""
    if recalibrate_value and continue_from is None:
        raise typer.BadParameter("--recalibrate-value needs --continue-from")
    with user_errors():
        sets = parse_sets(set_ or [])
        if from_manifest is not None:
            from envs.registry import market_for
            from rl.manifest import config_from_manifest

            if data is not None or exchange is not None:
                raise ValueError("--from-manifest reruns the recorded market: drop --data and "
                                 "--exchange")
            cfg = config_from_manifest(from_manifest)
            config_from_manifest(from_manifest, market_for(cfg.env_config))
        else:
            cfg = load_config(
                config, data=data, exchange=exchange, steps=steps, env_runners=env_runners,
                envs_per_runner=envs_per_runner, model=model, seed=seed, wandb=wandb,
                learners=learners, gpus_per_learner=gpus_per_learner, compile_=compile_,
            )
            cfg = store_market(cfg.with_overrides(**sets), exchange)
        if continue_from is not None and not continue_from.exists():
            raise FileNotFoundError(f"--continue-from: no checkpoint at {continue_from}")
        check_run_folder(out, resume)
        check_env(cfg)
    if continue_from is not None and recalibrate_value > 0:
        recalibration = train(
            cfg.with_overrides(**{"model.value_only": True}),
            out / "value_recalibration",
            max_iterations=recalibrate_value,
            init_module=continue_from,
        )
        console.print(f"value head recalibrated: {recalibration.checkpoint}")
        continue_from = recalibration.checkpoint
    with Progress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("train", total=cfg.steps, status="starting Ray")

        def on_result(row: dict[str, float]) -> None:
            ret = row.get(keys.trading("return"), float("nan"))
            progress.update(
                task,
                completed=min(row.get(keys.STEPS, 0), cfg.steps),
                status=f"iter {row.get('training_iteration', 0):.0f}  "
                f"episode return {ret:+.2%}  {row.get('env_steps_per_s', 0):,.0f} steps/s",
            )

        result = train(
            cfg, out, resume=resume, on_result=on_result, max_iterations=iterations,
            init_module=continue_from, storage_path=storage_path,
        )
    console.print(summary_table(result))
    print_diagnosis(result)
    console.print(f"results: {RunPaths(result.run_dir).results}")


def tune_command(
    schedule: Annotated[
        str, typer.Option(help="A shipped schedule ('default', 'ci') or a YAML file.")
    ] = "default",
    phases: Annotated[str, typer.Option(help="Phases to run, e.g. '1-9' or '3'.")] = "1-9",
    population: Annotated[int, typer.Option(help="Trials per phase (PBT when > 1).")] = 1,
    config: Annotated[
        str, typer.Option(help="Base TrainConfig YAML (phases apply on top), or 'defaults'.")
    ] = "defaults",
    data: Annotated[Path | None, typer.Option(help=DATA_HELP)] = None,
    exchange: Annotated[str | None, typer.Option(help=EXCHANGE_HELP)] = None,
    out: Annotated[Path, typer.Option(help="Run folder.")] = Path("runs/tune"),
    use_recommendations: Annotated[
        bool, typer.Option(help="Apply each phase's phaseN_recommendations.json.")
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run in --out (Tuner.restore).")
    ] = False,
    env_runners: Annotated[str | None, typer.Option(help=RUNNERS_HELP + " (per trial)")] = None,
    envs_per_runner: Annotated[
        int | None, typer.Option(help="Envs stepped together in each EnvRunner.")
    ] = None,
    learners: Annotated[int | None, typer.Option(help=LEARNERS_HELP)] = None,
    gpus_per_learner: Annotated[float | None, typer.Option(help="GPUs per learner.")] = None,
    max_concurrent: Annotated[
        int | None, typer.Option(help="Trials running at once (default: as resources allow).")
    ] = None,
    storage_path: Annotated[
        str | None,
        typer.Option(
            help="Tune's storage_path (shared path or URI; needed on multi-node "
            "clusters). Default: OUT/tune."
        ),
    ] = None,
) -> None:
    """Run the phase schedule with Ray Tune (see README: Phases and PBT)."""
    from rl.phases import run_phases
    from rl.schedule import Schedule

    if population < 1:
        raise typer.BadParameter("population must be >= 1")
    with user_errors():  # a bad schedule, config, range or store fails before Ray starts
        sched = Schedule.load(schedule)
        base = load_config(
            config, data=data, exchange=exchange, env_runners=env_runners,
            envs_per_runner=envs_per_runner, learners=learners,
            gpus_per_learner=gpus_per_learner,
        )
        base = store_market(base, exchange)
        sched.select(phases)
    results = run_phases(
        sched, phases, base, out, population=population,
        use_recommendations=use_recommendations, resume=resume,
        max_concurrent=max_concurrent, storage_path=storage_path,
    )
    table = Table(title=f"{sched.name} schedule, phases {phases}")
    source = f"validation {base.validation.metric}" if base.validates else "training return"
    for column in ("phase", "name", "until steps", f"best score ({source})", "trials",
                   "PBT exploits"):
        table.add_column(column)
    for r in results:
        best = max((t["score"] for t in r.trials if t["score"] is not None), default=None)
        table.add_row(
            str(r.number), r.name, f"{r.global_env_steps:,}",
            "-" if best is None else f"{best:.4g}", str(len(r.trials)), str(len(r.lineage)),
        )
    console.print(table)
    lineage = [(r.number, e) for r in results for e in r.lineage]
    if lineage:
        pbt = Table(title="PBT lineage")
        for column in ("phase", "trial", "copied", "at iteration", "new hyperparameters"):
            pbt.add_column(column)
        for number, e in lineage:
            changes = ", ".join(f"{k} {v[0]:.3g}->{v[1]:.3g}" for k, v in e["changed"].items())
            pbt.add_row(str(number), e["trial"], e["copied"], str(e["trial_iteration"]), changes)
        console.print(pbt)
    console.print(f"summary: {out / 'phases.json'}")
