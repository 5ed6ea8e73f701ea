"""Where a session's decisions come from: the policy in process, or the Serve app over HTTP.

Both take the env's observation (batch axis 1) and give the env's action. The remote one
posts the observation to ``/v1/signals`` and reads the action back from the signal
(decision, size, stop/take-profit distances, style, horizon): the same module's mode, so
the two agree up to the rounding of the stop distances' round trip through ATR units.
"""

from __future__ import annotations

import numpy as np

from envs.config import EnvConfig
from envs.spaces import DECISIONS, STYLES


def in_process(module):
    """The module's deterministic action (rl.evaluate.module_policy)."""
    from rl.evaluate import module_policy

    return module_policy(module, deterministic=True)


class RemotePolicy:
    """A policy served by `quantum serve` (its ``/v1/signals``), for the assets in order."""

    def __init__(self, url: str, api_key: str, env_config: EnvConfig,
                 assets: tuple[str, ...], timeout: float = 10.0) -> None:
        from serving.client import QuantumClient

        self.client = QuantumClient(url, api_key, timeout=timeout)
        self.execution = env_config.execution
        self.assets = assets

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ready = {k: v[0].astype(np.float64).tolist() for k, v in obs.items()}
        signals = self.client.signal(observation=ready)["signals"]
        return signals_to_action(signals, self.assets, self.execution)

    def close(self) -> None:
        self.client.close()


def signals_to_action(signals: list[dict], assets: tuple[str, ...], execution) -> dict:
    """The env action a served signal list stands for (serving.inference._signals inverted)."""
    by_asset = {s["asset"]: s for s in signals}
    missing = [a for a in assets if a not in by_asset]
    if missing:
        raise ValueError(f"the served model gave no signal for {missing}")
    n = len(assets)
    trade = np.zeros((1, n), np.int64)
    size = np.zeros((1, n), np.float32)
    risk = np.zeros((1, 2 * n), np.float32)
    ex = np.zeros((1, 2 * n), np.int64)
    (sl_lo, sl_hi), (tp_lo, tp_hi) = execution.stop_loss_atr, execution.take_profit_atr
    for a, asset in enumerate(assets):
        s = by_asset[asset]
        trade[0, a] = DECISIONS.index(s["decision"])
        size[0, a] = s["size"]
        risk[0, 2 * a] = (s["stop_loss_atr"] - sl_lo) / (sl_hi - sl_lo)
        risk[0, 2 * a + 1] = (s["take_profit_atr"] - tp_lo) / (tp_hi - tp_lo)
        ex[0, 2 * a] = STYLES.index(s["execution_style"])
        ex[0, 2 * a + 1] = s["execution_horizon_bars"] - 1
    return {"trade": trade, "size": size, "risk": risk, "execution": ex}
