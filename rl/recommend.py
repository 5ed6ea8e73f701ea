"""Performance-adaptive recommendations for the next phase, from the finished one's metrics.

After a phase, ``recommend`` reads its per-iteration results (results.jsonl rows) and
proposes changes to the next phase's hyperparameters, each with the measurement that
triggered it. ``quantum tune`` writes them to ``phase{N+1}_recommendations.json`` and
``--use-recommendations`` applies them on top of the next phase's own settings.

The rules (thresholds are module constants; each rule looks at the last third of the
phase, where its settings have had their effect):

- entropy collapse: entropy fell below ENTROPY_COLLAPSE of where the phase started
  -> entropy coefficient x1.5 (exploration died before the phase's work was done);
- value function lagging: explained variance below VF_EXPLAINED_MIN
  -> value-loss coefficient x1.5;
- policy moving too fast: mean KL above KL_HIGH -> learning rate x0.5 and clip x0.8;
  too slow: KL below KL_LOW while returns are not improving -> learning rate x1.25;
- Sharpe trend: a falling Sharpe (negative slope over the phase) -> learning rate x0.7;
- drawdowns: mean episode max drawdown above DRAWDOWN_HIGH -> drawdown penalty +0.5;
- liquidations: more than LIQUIDATION_HIGH of episodes liquidated -> leverage penalty +0.05.

Every recommended value is clamped to the ranges of rl.schedule.MUTABLE_KEYS.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rl import metric_keys as keys
from rl.config import TrainConfig
from rl.schedule import MUTABLE_KEYS

ENTROPY_COLLAPSE = 0.5
VF_EXPLAINED_MIN = 0.1
KL_HIGH = 0.05
KL_LOW = 0.002
DRAWDOWN_HIGH = 0.2
LIQUIDATION_HIGH = 0.05



def _series(rows: Sequence[dict[str, float]], key: str) -> np.ndarray:
    return np.array([r[key] for r in rows if key in r], dtype=float)


def _tail_mean(values: np.ndarray) -> float:
    return float(values[-max(1, len(values) // 3) :].mean()) if len(values) else float("nan")


def _slope(values: np.ndarray) -> float:
    if len(values) < 3:
        return 0.0
    return float(np.polyfit(np.arange(len(values)), values, 1)[0])


def _get(config: TrainConfig, dotted: str) -> float:
    return float(config.value(dotted) or 0.0)  # unset env reward weights default to 0


def recommend(
    rows: Sequence[dict[str, float]], next_config: TrainConfig
) -> dict[str, dict[str, Any]]:
    """{dotted key: {"value", "previous", "reason"}} for the next phase (may be empty)."""
    out: dict[str, dict[str, Any]] = {}

    def change(key: str, value: float, reason: str) -> None:
        lo, hi = MUTABLE_KEYS[key]
        previous = out.get(key, {}).get("previous", _get(next_config, key))
        out[key] = {
            "value": float(min(max(value, lo), hi)),
            "previous": previous,
            "reason": reason,
        }

    entropy = _series(rows, keys.ENTROPY)
    if len(entropy) >= 2 and entropy[0] > 0:
        tail = _tail_mean(entropy)
        if tail < ENTROPY_COLLAPSE * entropy[0]:
            change(
                "ppo.entropy_coeff",
                _get(next_config, "ppo.entropy_coeff") * 1.5 or 0.005,
                f"entropy collapsed from {entropy[0]:.3g} to {tail:.3g}",
            )
    explained = _series(rows, keys.VF_EXPLAINED_VAR)
    if len(explained) and _tail_mean(explained) < VF_EXPLAINED_MIN:
        change(
            "ppo.vf_loss_coeff",
            _get(next_config, "ppo.vf_loss_coeff") * 1.5,
            f"value function explains little: explained variance {_tail_mean(explained):.3g}",
        )
    returns = _series(rows, keys.trading("return"))
    kl = _series(rows, keys.MEAN_KL)
    if len(kl) and _tail_mean(kl) > KL_HIGH:
        change("ppo.lr", _get(next_config, "ppo.lr") * 0.5, f"mean KL {_tail_mean(kl):.3g}")
        change(
            "ppo.clip_param",
            _get(next_config, "ppo.clip_param") * 0.8,
            f"mean KL {_tail_mean(kl):.3g} above {KL_HIGH}",
        )
    elif len(kl) and 0 < _tail_mean(kl) < KL_LOW and _slope(returns) <= 0:
        change(
            "ppo.lr",
            _get(next_config, "ppo.lr") * 1.25,
            f"mean KL {_tail_mean(kl):.3g} and returns not improving: updates too timid",
        )
    sharpe = _series(rows, keys.trading("sharpe"))
    if _slope(sharpe) < 0 and "ppo.lr" not in out:
        change(
            "ppo.lr",
            _get(next_config, "ppo.lr") * 0.7,
            f"Sharpe falling over the phase (slope {_slope(sharpe):.3g} per iteration)",
        )
    drawdown = _series(rows, keys.trading("max_drawdown"))
    if len(drawdown) and _tail_mean(drawdown) > DRAWDOWN_HIGH:
        key = "env_config.env.reward.drawdown"
        change(key, _get(next_config, key) + 0.5, f"mean max drawdown {_tail_mean(drawdown):.1%}")
    liquidated = _series(rows, keys.trading("liquidated"))
    if len(liquidated) and _tail_mean(liquidated) > LIQUIDATION_HIGH:
        key = "env_config.env.reward.leverage"
        change(
            key,
            _get(next_config, key) + 0.05,
            f"{_tail_mean(liquidated):.1%} of episodes liquidated",
        )
    return out


def write_recommendations(
    path: Path,
    phase: int,
    recommendations: dict[str, dict[str, Any]],
    metrics: dict,
    diagnosis: list[dict[str, Any]] | None = None,
) -> None:
    """phase{N}_recommendations.json: what to change for phase N, why, the evidence, and
    the finished phase's diagnosis (rl.diagnose: signs that it was not learning)."""
    body = {
        "phase": phase,
        "recommendations": recommendations,
        "finished_phase_metrics": metrics,
        "diagnosis": diagnosis or [],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True))
    tmp.replace(path)


def read_recommendations(path: Path) -> dict[str, float]:
    """The {dotted key: value} overrides a recommendations file holds."""
    body = json.loads(Path(path).read_text())
    return {k: v["value"] for k, v in body["recommendations"].items()}
