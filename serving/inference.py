"""A loaded policy and its batched forward pass, independent of Serve (tests and the bare
benchmark app use it directly; the Serve deployment wraps it).

One forward pass over a batch of observations gives, per request and asset: the
decision (mode of each ordered head, as backtests use), the probabilities of the
trade head and of the execution-style head (given the chosen decision and size), the
cross-asset attention weights, and the critic's value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from envs.config import EnvConfig, ExecStyle
from envs.spaces import observation_space
from market.schema import timeframe_ms

DECISIONS = ("short", "flat", "long")
STYLES = tuple(s.name.lower() for s in ExecStyle)


@dataclass
class LoadedPolicy:
    """A trained module with what the API needs to describe and feed it."""

    model_id: str
    checkpoint: Path
    module: object
    env_config: EnvConfig
    assets: tuple[str, ...]
    kind: str
    spec: object = field(default=None)
    """serving.observation.ObservationSpec (bars -> observation)."""
    timeframe: str = "1m"
    """The run's bar timeframe (ccxt name), as the market store names it."""

    @classmethod
    def load(cls, model_path: str | Path) -> LoadedPolicy:
        """Load once per process (RLModule.from_checkpoint is slow: never per request)."""
        from backtest.loading import load_trained
        from envs.registry import market_for
        from serving.observation import ObservationSpec

        trained = load_trained(Path(model_path))
        env_config = EnvConfig(**trained.config.env_config.get("env", {}))
        space = trained.module.observation_space
        n_assets = space["market"].shape[1]
        assets = _assets(trained.checkpoint, trained.config.env_config, n_assets, market_for)
        expected = observation_space(env_config, n_assets, space["market"].shape[2])
        if expected != space:
            raise ValueError(f"{model_path}: the module's observation space {space} does not "
                             f"match its run's env config {expected}")
        torch.set_grad_enabled(False)
        timeframe = _timeframe(trained.config.env_config)
        run = trained.checkpoint.parent.parent if trained.checkpoint.parent.name == "checkpoints" \
            else trained.checkpoint
        return cls(
            model_id=f"{run.name}@{trained.checkpoint.name}",
            checkpoint=trained.checkpoint,
            module=trained.module,
            env_config=env_config,
            assets=assets,
            kind=trained.config.model.kind,
            spec=ObservationSpec.from_spaces(space, assets, env_config, timeframe_ms(timeframe)),
            timeframe=timeframe,
        )

    def info(self) -> dict:
        space = self.module.observation_space
        return {
            "id": self.model_id,
            "checkpoint": str(self.checkpoint),
            "kind": self.kind,
            "assets": list(self.assets),
            "observation": {k: list(space[k].shape) for k in space.spaces},
            "min_bars": int(self.spec.min_bars),
        }

    def forward(self, obs: dict[str, np.ndarray]) -> list[dict]:
        """Signals for a batch of observations (leading axis = requests)."""
        module = self.module
        with torch.inference_mode():
            # forward_inference's steps, sharing one encoding with the value head
            tensors = {k: torch.from_numpy(v) for k, v in obs.items()}
            base, context, attention = module.encode(tensors)
            actions, inputs = module.heads.sample(base, deterministic=True)
            values = module.value_head(context).squeeze(-1)
        actions = {k: v.numpy() for k, v in actions.items()}
        dist = module.get_inference_action_dist_cls()(inputs)
        trade_p = dist.probabilities("trade").numpy()
        style_p = dist.probabilities("style").numpy()
        attention = attention.numpy() if attention is not None else None
        return [
            self._signals(i, actions, trade_p, style_p, attention, float(values[i]))
            for i in range(len(values))
        ]

    def _signals(self, i, actions, trade_p, style_p, attention, value) -> dict:
        ex, lim = self.env_config.execution, self.env_config.limits
        per_asset_budget = lim.max_concentration * lim.max_leverage
        signals = []
        for a, asset in enumerate(self.assets):
            decision = int(actions["trade"][i, a])
            size = float(actions["size"][i, a])
            sl, tp = (float(x) for x in actions["risk"][i, 2 * a : 2 * a + 2])
            style, horizon = (int(x) for x in actions["execution"][i, 2 * a : 2 * a + 2])
            signals.append(
                {
                    "asset": asset,
                    "decision": DECISIONS[decision],
                    "size": size,
                    "target_exposure": (decision - 1) * size * per_asset_budget,
                    "stop_loss_atr": ex.stop_loss_atr[0]
                    + sl * (ex.stop_loss_atr[1] - ex.stop_loss_atr[0]),
                    "take_profit_atr": ex.take_profit_atr[0]
                    + tp * (ex.take_profit_atr[1] - ex.take_profit_atr[0]),
                    "execution_style": STYLES[style],
                    "execution_horizon_bars": horizon + 1,
                    "probabilities": {
                        "trade": dict(zip(DECISIONS, map(float, trade_p[i, a]), strict=True)),
                        "style": dict(zip(STYLES, map(float, style_p[i, a]), strict=True)),
                    },
                    "attention": {}
                    if attention is None
                    else dict(zip(self.assets, map(float, attention[i, a]), strict=True)),
                }
            )
        return {"model_id": self.model_id, "value": value, "signals": signals}


def _assets(checkpoint: Path, env_config: dict, n_assets: int, market_for) -> tuple[str, ...]:
    """The asset names the policy was trained on: from the run's manifest, else its
    config's symbols, else by loading the run's market (slow; runs before manifests
    recorded their assets)."""
    import json

    manifests = [p / "manifest.json" for p in (checkpoint.parent.parent, checkpoint.parent)]
    recorded = [json.loads(m.read_text()).get("data_assets") for m in manifests if m.is_file()]
    if recorded and recorded[0]:
        names = tuple(recorded[0])
    elif env_config.get("symbols"):
        names = tuple(env_config["symbols"])
    else:
        skip = ("start_range", "start_fraction", "num_envs")
        names = market_for({k: v for k, v in env_config.items() if k not in skip}).assets
    if len(names) != n_assets:
        raise ValueError(f"the run's market has {len(names)} assets, the module {n_assets}")
    return tuple(names)


def _timeframe(env_config: dict) -> str:
    """Bar timeframe of the run's market (the synthetic default is 1m)."""
    return str(env_config.get("timeframe", "1m"))
