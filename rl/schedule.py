"""The phase schedule: extended training as a sequence of phases with their own settings.

A schedule is a typed, frozen config (YAML: ``rl/schedules/*.yaml``). Each phase names
the cumulative env-step count at which it ends (``until_steps``: the global step
counter keeps increasing across phases), the hyperparameters it changes and why,
and which keys population-based training may perturb within it. Phase N trains
with the run's base TrainConfig plus the settings of phases 1..N applied in order
(``Schedule.config_for``), so a phase lists only what it changes.

The default schedule (``rl/schedules/default.yaml``) is the seed's: 9 phases up to
10M steps, a Foundation stage (0-1M) and a Mastery stage (1M-10M).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rl import metric_keys as keys
from rl.config import TrainConfig

_FROZEN = ConfigDict(frozen=True, extra="forbid")
SCHEDULES = Path(__file__).resolve().parent / "schedules"

MUTABLE_KEYS = {
    "ppo.lr": (1e-6, 1e-2),
    "ppo.entropy_coeff": (0.0, 0.1),
    "ppo.clip_param": (0.05, 0.5),
    "ppo.vf_loss_coeff": (0.05, 5.0),
    "ppo.num_epochs": (1, 30),
    "env_config.env.reward.drawdown": (0.0, 10.0),
    "env_config.env.reward.turnover": (0.0, 1.0),
    "env_config.env.reward.leverage": (0.0, 1.0),
}
"""Keys a phase may mark mutable for PBT, with the range every mutation is kept in."""


class Criteria(BaseModel):
    """When a phase may end before its step budget (all given conditions must hold)."""

    model_config = _FROZEN
    min_steps: int = Field(0, ge=0, description="Env steps the phase runs at least.")
    mean_return: float | None = Field(
        None, description="Mean episode return (trading/return) to reach."
    )
    sharpe: float | None = Field(None, description="Mean episode Sharpe to reach.")
    max_drawdown: float | None = Field(
        None, ge=0, description="Mean episode max drawdown to stay below."
    )

    def met(self, steps_in_phase: int, metrics: dict[str, float]) -> bool:
        """Whether every given condition holds (no condition given: never early). The
        conditions read the validation metrics (rl.validation) when the run has them,
        else the training episodes'."""
        held_out = any(k.startswith(keys.VALIDATION) for k in metrics)
        prefix = keys.VALIDATION if held_out else keys.TRADING
        checks = []
        if self.mean_return is not None:
            checks.append(metrics.get(prefix + "return", -1e9) >= self.mean_return)
        if self.sharpe is not None:
            checks.append(metrics.get(prefix + "sharpe", -1e9) >= self.sharpe)
        if self.max_drawdown is not None:
            checks.append(metrics.get(prefix + "max_drawdown", 1e9) <= self.max_drawdown)
        return bool(checks) and steps_in_phase >= self.min_steps and all(checks)


class Phase(BaseModel):
    """One phase: its end, its settings (dotted TrainConfig keys) and the reasons."""

    model_config = _FROZEN
    name: str
    stage: Literal["foundation", "mastery"]
    until_steps: int = Field(gt=0, description="Cumulative env steps at which the phase ends.")
    settings: dict[str, float | int | str | list[float]] = Field(
        default_factory=dict,
        description="Dotted TrainConfig keys this phase sets, e.g. 'ppo.lr': 1e-4.",
    )
    reasons: dict[str, str] = Field(
        default_factory=dict, description="Why each setting differs from the previous phase."
    )
    mutable: tuple[str, ...] = Field(
        ("ppo.lr", "ppo.entropy_coeff", "ppo.clip_param"),
        description="Keys PBT may perturb within this phase (see MUTABLE_KEYS).",
    )
    criteria: Criteria = Criteria()

    @model_validator(mode="after")
    def _known_mutables(self) -> Phase:
        unknown = sorted(set(self.mutable) - set(MUTABLE_KEYS))
        if unknown:
            raise ValueError(f"phase {self.name}: keys {unknown} cannot be mutable")
        missing = sorted(set(self.reasons) - set(self.settings))
        if missing:
            raise ValueError(f"phase {self.name}: reasons for unset keys {missing}")
        return self

    def apply(self, base: TrainConfig, extra: dict | None = None) -> TrainConfig:
        """The base config with this phase's settings (then ``extra``) applied."""
        return base.with_overrides(**{**self.settings, **(extra or {})})


class Schedule(BaseModel):
    """An ordered list of phases with strictly increasing ends."""

    model_config = _FROZEN
    name: str
    phases: tuple[Phase, ...]

    @model_validator(mode="after")
    def _ordered(self) -> Schedule:
        ends = [p.until_steps for p in self.phases]
        if not ends or ends != sorted(set(ends)):
            raise ValueError("phases must end at strictly increasing until_steps")
        return self

    @classmethod
    def load(cls, name_or_path: str) -> Schedule:
        """A shipped schedule by name ('default', 'ci') or a YAML file path."""
        path = Path(name_or_path)
        if not path.suffix:
            path = SCHEDULES / f"{name_or_path}.yaml"
        if not path.exists():
            shipped = sorted(p.stem for p in SCHEDULES.glob("*.yaml"))
            raise FileNotFoundError(f"no schedule {name_or_path!r}; shipped: {shipped}")
        return cls.model_validate(yaml.safe_load(path.read_text()))

    def select(self, spec: str) -> list[tuple[int, Phase]]:
        """Phases by 1-based number: '1-9', '3', '2-4'."""
        first, _, last = spec.partition("-")
        lo, hi = int(first), int(last or first)
        if not 1 <= lo <= hi <= len(self.phases):
            raise ValueError(f"phases {spec!r} outside 1-{len(self.phases)}")
        return [(i, self.phases[i - 1]) for i in range(lo, hi + 1)]

    def config_for(self, number: int, base: TrainConfig, extra: dict | None = None) -> TrainConfig:
        """Phase ``number``'s config: the base with phases 1..number applied in order (a
        phase lists only what it changes), then ``extra`` (e.g. recommendations). The
        env part is validated here, before any training starts."""
        config = base
        for _, phase in self.select(f"1-{number}"):
            config = phase.apply(config)
        config = config.with_overrides(**(extra or {}))
        _ = config.env  # validates the env settings
        return config

    def start_of(self, number: int) -> int:
        """Cumulative env steps at which phase ``number`` (1-based) starts."""
        return 0 if number == 1 else self.phases[number - 2].until_steps
