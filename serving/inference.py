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

from envs.config import EnvConfig
from envs.spaces import DECISIONS, STYLES, observation_space
from market.schema import timeframe_ms


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
        from rl.checkpoint import TrainedRun
        from serving.observation import ObservationSpec

        trained = TrainedRun.open(model_path)
        env_config = trained.env
        space = trained.module.observation_space
        assets = trained.assets()
        text = tuple(space["text"].shape) if "text" in space.spaces else None
        expected = observation_space(env_config, len(assets), space["market"].shape[2], text)
        if expected != space:
            raise ValueError(f"{model_path}: the module's observation space {space} does not "
                             f"match its run's env config {expected}")
        timeframe = trained.market.bar_timeframe
        return cls(
            model_id=trained.model_id,
            checkpoint=trained.checkpoint,
            module=trained.module,
            env_config=env_config,
            assets=assets,
            kind=trained.config.model.kind,
            spec=ObservationSpec.from_spaces(space, assets, env_config, timeframe_ms(timeframe),
                                             trained.market.news),
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
            "shield": self.env_config.shield.model_dump(mode="json"),
        }

    def forward(self, obs: dict[str, np.ndarray]) -> list[dict]:
        """Signals for a batch of observations (leading axis = requests)."""
        module = self.module
        with torch.inference_mode():
            act = module.act({k: torch.from_numpy(v) for k, v in obs.items()}, True)
            dist = module.get_inference_action_dist_cls()(act.inputs)
            trade_p = dist.probabilities("trade").numpy()
            style_p = dist.probabilities("style").numpy()
        actions = {k: v.numpy() for k, v in act.actions.items()}
        values = act.value
        attention = act.attention.numpy() if act.attention is not None else None
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

    def with_targets(self, result: dict, state) -> dict:
        """``result`` (one of :meth:`forward`'s) with each asset's ``target_notional`` and
        what the risk shield did (``shield``), as the env would trade this decision from the
        request's account (a serving.observation.ServedState): the decide kernel's caps,
        shield and daily-loss rule (envs.account.Account.targets)."""
        trade = [DECISIONS.index(s["decision"]) for s in result["signals"]]
        size = [s["size"] for s in result["signals"]]
        notional, report = state.account.targets(state.data, self.env_config, trade, size)
        for signal, value in zip(result["signals"], notional, strict=True):
            signal["target_notional"] = float(value)
            signal["shield"] = report[signal["asset"]] if self.env_config.shield.enabled \
                else None
        return result
