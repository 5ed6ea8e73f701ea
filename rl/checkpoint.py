"""A trained run as one object: where it is, what it was trained with, its policy.

Backtests, bias analysis, serving, live trading and the chatbot all start from a user's
``--model-path``: a run folder (``runs/NAME``: its best checkpoint on the validation
part, ``checkpoints/best``, else its final one), an Algorithm checkpoint
(``runs/NAME/checkpoints/iter_000008`` or ``.../final``) or a bare RLModule folder.
:class:`TrainedRun` resolves that once and answers what each of them asks: the run's
TrainConfig and manifest, its market and assets, its untouched test span, the spaces
its module expects, and the module itself (loaded on first use: slow, never per request).

A run folder (rl.train)::

    NAME/config.yaml      the TrainConfig
    NAME/manifest.json    reproducibility manifest with the split (rl.manifest)
    NAME/results.jsonl    one line of metrics per iteration
    NAME/checkpoints/iter_000010/, final -> the last, best -> the best validated
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envs.config import EnvConfig
from envs.market_spec import MarketSpec
from rl.config import TrainConfig

if TYPE_CHECKING:
    from envs.data import MarketArrays


@dataclass(frozen=True)
class RunPaths:
    """The files of a run folder."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def results(self) -> Path:
        return self.root / "results.jsonl"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def final(self) -> Path:
        return self.checkpoints / "final"

    @property
    def best(self) -> Path:
        """The checkpoint with the best validation score (rl.validation)."""
        return self.checkpoints / "best"


def latest_checkpoint(paths: RunPaths) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    if not paths.checkpoints.is_dir():
        return None
    done = sorted(p for p in paths.checkpoints.glob("iter_*") if p.is_dir())
    return done[-1] if done else None


def module_path(checkpoint: Path) -> Path:
    """The RLModule folder of an Algorithm checkpoint, or ``checkpoint`` itself when it
    already is a module folder."""
    from rl.rllib_compat import algorithm_module_dir

    inner = algorithm_module_dir(Path(checkpoint))
    return inner if inner.is_dir() else Path(checkpoint)


def load_module(checkpoint: Path):
    """The trained RLModule of an Algorithm (or RLModule) checkpoint, on CPU, eval mode."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    module = RLModule.from_checkpoint(str(module_path(checkpoint).resolve()))
    module.eval()
    return module


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


def read_manifest(model_path: Path) -> dict[str, Any] | None:
    """The run's manifest.json next to a run folder or one of its checkpoints."""
    path = Path(model_path).resolve()
    for folder in (path, path.parent, path.parent.parent):
        manifest = folder / "manifest.json"
        if manifest.is_file():
            return json.loads(manifest.read_text())
    return None


def untouched_span(manifest: dict[str, Any] | None) -> tuple[str, str] | None:
    """A run's untouched test part (first, last bar time), if its manifest records one."""
    part = (manifest or {}).get("splits", {}).get("test")
    return (part["first"], part["last"]) if part else None


@dataclass(frozen=True)
class TrainedRun:
    """A trained policy with the run it came from (module docstring)."""

    checkpoint: Path
    """The Algorithm (or module) checkpoint folder the policy loads from."""
    run_dir: Path | None
    """The run folder; None for a bare module folder."""
    config: TrainConfig
    """The run's TrainConfig (a bare module gets the defaults, which the space check
    then validates)."""
    manifest: dict[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def open(cls, path: Path | str) -> TrainedRun:
        """Resolve ``--model-path`` (module docstring); the module loads on first use."""
        checkpoint, run = resolve_checkpoint(Path(path))
        config = TrainConfig.from_yaml(run / "config.yaml") if run is not None else TrainConfig()
        return cls(checkpoint, run, config, read_manifest(checkpoint))

    @functools.cached_property
    def module(self):
        """The RLModule on CPU in eval mode (loaded once)."""
        return load_module(self.checkpoint)

    @property
    def model_id(self) -> str:
        """``run@checkpoint`` (what the API calls the model)."""
        folder = self.run_dir if self.run_dir is not None else self.checkpoint
        return f"{folder.name}@{self.checkpoint.name}"

    @property
    def market(self) -> MarketSpec:
        """The market the run trained on."""
        return self.config.market

    @property
    def env(self) -> EnvConfig:
        """The run's simulator settings."""
        return self.config.env

    @property
    def recorded_assets(self) -> tuple[str, ...] | None:
        """The assets the run trained on, in observation order: what its manifest recorded
        (the market's own names), else its config's symbols, else unknown."""
        assets = (self.manifest or {}).get("data_assets")
        if assets:
            return tuple(assets)
        return self.market.symbols or None

    def assets(self) -> tuple[str, ...]:
        """The asset names the policy trades: recorded ones, else by loading the run's
        market (slow; runs before manifests recorded their assets). Checked against the
        module's asset count."""
        names = self.recorded_assets or self.market.arrays().assets
        n_assets = self.module.observation_space["market"].shape[1]
        if len(names) != n_assets:
            raise ValueError(f"the run's market has {len(names)} assets, the module {n_assets}")
        return tuple(names)

    @property
    def test_span(self) -> tuple[str, str] | None:
        """The run's untouched test part (first, last bar time), if its manifest has one."""
        return untouched_span(self.manifest)

    def check_spaces(self, data: MarketArrays, env: EnvConfig) -> None:
        """Refuse market arrays or a simulator whose spaces differ from the module's (a
        clear error naming what differs, instead of a shape error mid-run)."""
        from envs.space_checks import check_action_space, check_observation_space
        from envs.spaces import action_space, observation_space, text_shape

        module, assets = self.module, data.assets
        expected = observation_space(env, len(assets), len(data.features), text_shape(data))
        check_observation_space(module.observation_space, expected, assets=assets)
        check_action_space(module.action_space, action_space(env, len(assets)), assets=assets)
