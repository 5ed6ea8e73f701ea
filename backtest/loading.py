"""Finding a trained policy and the config it was trained with.

A checkpoint path may be a run folder (``runs/NAME``: its selected checkpoint, the
best on the validation part (``checkpoints/best``), else its final one), an
Algorithm checkpoint (``runs/NAME/checkpoints/iter_000008`` or ``.../final``) or a
bare RLModule folder. The run's ``config.yaml`` (rl.train) says which market, env
and model the policy was trained on, so a backtest uses the same simulator settings
unless the user overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rl.config import TrainConfig
from rl.train import RunPaths, load_module


@dataclass(frozen=True)
class TrainedPolicy:
    """A loaded RLModule with its training config and where it came from."""

    module: object
    config: TrainConfig
    checkpoint: Path
    """The Algorithm (or module) checkpoint folder actually loaded."""


def resolve_checkpoint(path: Path) -> tuple[Path, Path | None]:
    """(checkpoint folder, run folder or None) for a run folder or a checkpoint folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if (path / "checkpoints").is_dir():
        paths = RunPaths(path)
        chosen = paths.best if paths.best.exists() else paths.final
        if not chosen.exists():
            raise FileNotFoundError(f"{path} is a run folder without a final checkpoint")
        return chosen.resolve(), path
    for parent in (path.parent.parent, path.parent):
        if (parent / "config.yaml").is_file():
            return path.resolve(), parent
    return path.resolve(), None


def load_trained(path: Path) -> TrainedPolicy:
    """The module of a checkpoint (CPU, eval mode) and the config of its run.

    A bare module without its run folder gets the default TrainConfig (the defaults'
    env and synthetic market), which the observation-space check then validates.
    """
    checkpoint, run = resolve_checkpoint(path)
    config = TrainConfig.from_yaml(run / "config.yaml") if run is not None else TrainConfig()
    return TrainedPolicy(load_module(checkpoint), config, checkpoint)
