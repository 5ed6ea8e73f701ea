"""Policy bias analysis: what a trained policy does on held-out states, asset by asset.

A policy that learned "always short BTC" from one trending training span scores well
in-sample and fails out of sample, and its equity curve alone rarely shows why. This
module asks the policy for actions on many held-out states and summarises them per
asset: the short/flat/long mix with a binomial test of long vs short (is the lean more
than chance?), sizes and signed exposure, how often the Beta heads sit at their 0/1
edges, the stop-loss/take-profit and execution choices, the states behind the most
extreme exposures, and (given both) how often sampled and deterministic actions agree.
The report is plain data; ``backtest.bias_plots`` writes its CSVs, JSON and charts.

The checks that a saved model fits the env (``check_observation_space``,
``check_action_space``) live in ``envs.space_checks`` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from gymnasium import spaces
from scipy.stats import binomtest

from envs.config import EnvConfig, ExecStyle, ExecutionConfig
from envs.core.observe import PORTFOLIO_FEATURES, SHIELD_FEATURES
from envs.data import OBS_FEATURES
from envs.registry import make_env
from envs.space_checks import (
    ActionMismatchError,
    ObservationMismatchError,
    SpaceMismatchError,
    check_action_space,
    check_observation_space,
)
from envs.spaces import check_actions
from rl.evaluate import Policy

__all__ = [
    "ActionMismatchError", "AssetBias", "BiasReport", "BiasThresholds", "ExtremeState",
    "ObservationMismatchError", "SpaceMismatchError", "analyze_bias", "check_action_space",
    "check_observation_space", "sample_states",
]

DIRECTIONS = ("short", "flat", "long")
"""Labels of the trade head's values 0, 1, 2."""
_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass(frozen=True)
class BiasThresholds:
    """When a lean counts as a bias. Defaults are strict: flags are meant to be acted on."""

    alpha: float = 0.01
    """Family-wise significance of the two-sided binomial test (long vs short among non-flat
    decisions, null 50/50), Bonferroni-split over the assets: with many states a tiny,
    harmless lean is 'significant', so ``dominance`` decides 'always_*'."""
    dominance: float = 0.95
    """Share of one direction (among non-flat decisions, or of flat among all) above which
    the policy is flagged 'always_long' / 'always_short' / 'always_flat'."""
    min_decisions: int = 20
    """Fewer non-flat decisions than this: 'insufficient' (no test has power there)."""
    size_edge: float = 0.01
    """Sizes within this distance of 0 or 1 count as at the boundary (saturated Beta head)."""
    top_k: int = 10
    """How many of the most extreme (sample, asset) exposures the report keeps."""


@dataclass(frozen=True)
class AssetBias:
    """One asset's action statistics; fractions are over all samples unless noted."""

    asset: str
    short: int
    flat: int
    long: int
    short_fraction: float
    flat_fraction: float
    long_fraction: float
    long_share: float | None
    """long / (long + short): the lean among the decisions that take a side."""
    long_share_ci: tuple[float, float] | None
    """Clopper-Pearson 95% interval of ``long_share``."""
    p_value: float | None
    """Two-sided binomial test of long_share = 0.5."""
    flag: str
    """always_long, always_short, always_flat, leans_long, leans_short, balanced or
    insufficient (see BiasThresholds)."""
    size_mean: float
    size_quantiles: dict[str, float]
    size_mean_when_trading: float | None
    exposure_mean: float
    """Mean of direction (-1, 0, 1) x size: the average signed share of the budget."""
    exposure_std: float
    exposure_q01: float
    exposure_q99: float
    exposure_max_abs: float
    size_at_zero: float
    size_at_one: float
    stop_loss_atr_mean: float | None
    """Over non-flat decisions only: a flat decision's stop is never placed."""
    take_profit_atr_mean: float | None
    execution_styles: dict[str, float]
    """Share of each execution style among non-flat decisions."""
    horizon_mean: float | None
    """Mean horizon in bars among non-flat decisions."""
    deterministic_trade_agreement: float | None = None
    """Share of samples where the sampled and the deterministic trade agree."""
    deterministic_long_fraction: float | None = None
    deterministic_flat_fraction: float | None = None
    deterministic_short_fraction: float | None = None
    deterministic_size_mae: float | None = None


@dataclass(frozen=True)
class ExtremeState:
    """One of the (sample, asset) pairs with the largest |exposure|, with its state."""

    sample: int
    asset: str
    direction: str
    size: float
    exposure: float
    portfolio: dict[str, float]
    """The asset's portfolio features in that state (position, unrealised return, ...)."""
    market_last: dict[str, float]
    """The asset's market features at the state's last bar."""


@dataclass(frozen=True)
class BiasReport:
    """Everything the analysis found; ``to_dict`` is its JSON form (without the samples)."""

    assets: tuple[str, ...]
    num_samples: int
    thresholds: BiasThresholds
    per_asset: tuple[AssetBias, ...]
    extremes: tuple[ExtremeState, ...]
    samples: pd.DataFrame = field(compare=False, repr=False)
    """One row per (sample, asset): the action taken (long format, for CSVs and plots)."""

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.pop("samples")
        return _jsonable(out)

    def summary_frame(self) -> pd.DataFrame:
        """One row per asset, nested fields flattened (``size_q50``, ``style_market``...)."""
        rows = []
        for asset in self.per_asset:
            row: dict[str, Any] = {}
            for key, value in _jsonable(asset).items():
                if key == "long_share_ci":
                    row[f"{key}_low"], row[f"{key}_high"] = value or (None, None)
                elif isinstance(value, dict):
                    prefix = "style" if key == "execution_styles" else "size"
                    row.update({f"{prefix}_{k}": v for k, v in value.items()})
                else:
                    row[key] = value
            rows.append(row)
        return pd.DataFrame(rows)


def sample_states(
    env_config: Mapping[str, Any],
    num_samples: int,
    seed: int,
    start_range: tuple[int, int] | None = None,
    *,
    warmup_steps: int = 32,
    warmup_policy: Policy | None = None,
) -> dict[str, np.ndarray]:
    """``num_samples`` observations (one batch, leading axis num_samples) of held-out states.

    Each sample is one account started at a random bar of ``start_range`` (the held-out
    span, e.g. a test split; None: the span ``env_config`` gives the env) and stepped for
    a random 0..``warmup_steps`` decisions, so its portfolio and risk parts hold the open
    positions, PnL and drawdown that a fresh account lacks; the state after that is kept.
    By default each account holds one random target (direction, size, stops, execution;
    drawn once from the seeded action space) through its warm-up: states with every kind
    of position, independent of the policy under test and reproducible without torch. (A
    fresh random action every step churns the account into its daily loss limit within
    ~15 steps, which leaves flat, blocked accounts: no better than no warm-up.) Pass the
    policy itself (``module_policy(module, deterministic=False)``) for the states it
    visits (on-policy; reproducible only if torch is seeded too).

    Deterministic given ``seed``. With ``start_range`` the warm-up stays inside it, so
    every state's decision bar lies in [first, last].
    """
    if num_samples < 1 or warmup_steps < 0:
        raise ValueError("num_samples must be >= 1 and warmup_steps >= 0")
    config = {k: v for k, v in env_config.items() if k != "num_envs"}
    config["env"] = {**config.get("env", {}), "record_ledger": False}
    if start_range is not None:
        first, last = (int(x) for x in start_range)
        if first > last:
            raise ValueError(f"start_range {start_range}: first must be <= last")
        per_step = EnvConfig(**config["env"]).bars_per_step
        warmup_steps = min(warmup_steps, (last - first) // per_step)
        config.pop("start_fraction", None)
        config["start_range"] = (first, last - warmup_steps * per_step)
    env = make_env({**config, "num_envs": num_samples})
    policy = warmup_policy or _hold_random_target(env.action_space, seed)
    rng = np.random.default_rng(seed)
    keep_at = rng.integers(0, warmup_steps, size=num_samples, endpoint=True)
    obs, _ = env.reset(seed=seed)
    states = {k: v.copy() for k, v in obs.items()}
    for step in range(1, warmup_steps + 1):
        obs = env.step(policy(obs))[0]
        now = keep_at == step
        for key, value in obs.items():
            states[key][now] = value[now]
    return states


def _hold_random_target(action_space: spaces.Dict, seed: int) -> Policy:
    """One random action per account, drawn once and repeated (see sample_states)."""
    action_space.seed(seed)
    target = action_space.sample()
    return lambda obs: target


def analyze_bias(
    policy: Policy,
    observations: Mapping[str, np.ndarray],
    assets: Sequence[str],
    *,
    deterministic_policy: Policy | None = None,
    thresholds: BiasThresholds | None = None,
    execution: ExecutionConfig | None = None,
    batch_size: int = 512,
) -> BiasReport:
    """The policy's actions on ``observations`` (e.g. from ``sample_states``), summarised.

    ``policy`` is what is analysed (usually the sampling policy the agent trades with in
    training); ``deterministic_policy`` (its mode) adds agreement statistics. ``execution``
    maps the risk head's [0, 1] values to ATR multiples (default: ExecutionConfig()).
    Actions are checked as the env checks them: an invalid action is a policy bug.
    """
    thresholds = thresholds or BiasThresholds()
    execution = execution or ExecutionConfig()
    assets = tuple(assets)
    act = _actions(policy, observations, len(assets), execution, batch_size)
    det = None
    if deterministic_policy is not None:
        det = _actions(deterministic_policy, observations, len(assets), execution, batch_size)
    samples = _sample_frame(act, det, assets, execution)
    per_asset = tuple(
        _asset_bias(samples[samples["asset"] == name], name, thresholds, len(assets))
        for name in assets
    )
    return BiasReport(
        assets=assets,
        num_samples=len(act[0]),
        thresholds=thresholds,
        per_asset=per_asset,
        extremes=_extremes(samples, observations, thresholds.top_k),
        samples=samples,
    )


def _actions(policy, observations, n_assets, execution, batch_size):
    n = len(next(iter(observations.values()), ()))
    if n == 0:
        raise ValueError("observations are empty: nothing to analyse (see sample_states)")
    parts = []
    for lo in range(0, n, batch_size):
        batch = {k: np.ascontiguousarray(v[lo : lo + batch_size]) for k, v in observations.items()}
        rows = len(next(iter(batch.values())))
        parts.append(check_actions(policy(batch), rows, n_assets, execution.max_horizon))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))


def _sample_frame(act, det, assets, execution) -> pd.DataFrame:
    trade, size, risk, exe = act
    n, n_assets = trade.shape
    sl_lo, sl_hi = execution.stop_loss_atr
    tp_lo, tp_hi = execution.take_profit_atr
    direction = trade.astype(np.int64) - 1
    frame = pd.DataFrame(
        {
            "sample": np.repeat(np.arange(n), n_assets),
            "asset": np.tile(np.asarray(assets, dtype=object), n),
            "trade": np.asarray(DIRECTIONS, dtype=object)[trade.astype(np.int64).ravel()],
            "size": size.astype(np.float64).ravel(),
            "exposure": (direction * size.astype(np.float64)).ravel(),
            "stop_loss_atr": (sl_lo + risk[..., 0].astype(np.float64) * (sl_hi - sl_lo)).ravel(),
            "take_profit_atr": (tp_lo + risk[..., 1].astype(np.float64) * (tp_hi - tp_lo)).ravel(),
            "style": np.asarray([s.name.lower() for s in ExecStyle], dtype=object)[
                exe[..., 0].astype(np.int64).ravel()
            ],
            "horizon": exe[..., 1].astype(np.int64).ravel() + 1,
        }
    )
    if det is not None:
        labels = np.asarray(DIRECTIONS, dtype=object)
        frame["deterministic_trade"] = labels[det[0].astype(np.int64).ravel()]
        frame["deterministic_size"] = det[1].astype(np.float64).ravel()
    return frame


def _asset_bias(rows: pd.DataFrame, asset: str, th: BiasThresholds, n_assets: int) -> AssetBias:
    n = len(rows)
    counts = {d: int((rows["trade"] == d).sum()) for d in DIRECTIONS}
    sided = counts["long"] + counts["short"]
    share = ci = p_value = None
    if sided:
        test = binomtest(counts["long"], sided, 0.5)
        share, p_value = counts["long"] / sided, float(test.pvalue)
        low, high = test.proportion_ci(0.95)
        ci = (float(low), float(high))
    size, exposure = rows["size"].to_numpy(), rows["exposure"].to_numpy()
    trading = rows[rows["trade"] != "flat"]
    styles = trading["style"].value_counts(normalize=True)
    det = {}
    if "deterministic_trade" in rows:
        det = {
            "deterministic_trade_agreement": float(
                (rows["trade"] == rows["deterministic_trade"]).mean()
            ),
            "deterministic_size_mae": float(
                (rows["size"] - rows["deterministic_size"]).abs().mean()
            ),
            **{
                f"deterministic_{d}_fraction": float((rows["deterministic_trade"] == d).mean())
                for d in DIRECTIONS
            },
        }
    return AssetBias(
        asset=asset,
        **counts,
        **{f"{d}_fraction": counts[d] / n for d in DIRECTIONS},
        long_share=share,
        long_share_ci=ci,
        p_value=p_value,
        flag=_flag(counts, share, p_value, th, n_assets),
        size_mean=float(size.mean()),
        size_quantiles={f"q{round(q * 100):02d}": float(np.quantile(size, q)) for q in _QUANTILES},
        size_mean_when_trading=_mean(trading["size"]),
        exposure_mean=float(exposure.mean()),
        exposure_std=float(exposure.std()),
        exposure_q01=float(np.quantile(exposure, 0.01)),
        exposure_q99=float(np.quantile(exposure, 0.99)),
        exposure_max_abs=float(np.abs(exposure).max()),
        size_at_zero=float((size <= th.size_edge).mean()),
        size_at_one=float((size >= 1.0 - th.size_edge).mean()),
        stop_loss_atr_mean=_mean(trading["stop_loss_atr"]),
        take_profit_atr_mean=_mean(trading["take_profit_atr"]),
        execution_styles={
            s.name.lower(): float(styles.get(s.name.lower(), 0.0)) for s in ExecStyle
        },
        horizon_mean=_mean(trading["horizon"]),
        **det,
    )


def _flag(counts, share, p_value, th: BiasThresholds, n_assets: int) -> str:
    """The label of BiasThresholds: dominance first, then significance of the lean."""
    total = sum(counts.values())
    if counts["flat"] >= th.dominance * total:
        return "always_flat"
    if counts["long"] + counts["short"] < th.min_decisions:
        return "insufficient"
    significant = p_value < th.alpha / n_assets
    if significant and share >= th.dominance:
        return "always_long"
    if significant and share <= 1.0 - th.dominance:
        return "always_short"
    if significant:
        return "leans_long" if share > 0.5 else "leans_short"
    return "balanced"


def _extremes(samples: pd.DataFrame, observations, top_k: int) -> tuple[ExtremeState, ...]:
    order = np.argsort(-samples["exposure"].abs().to_numpy(), kind="stable")[:top_k]
    assets = list(dict.fromkeys(samples["asset"]))
    market, portfolio = observations["market"], observations["portfolio"]
    feature_names = _names(OBS_FEATURES, market.shape[-1], "feature")
    portfolio_names = _names(PORTFOLIO_FEATURES + SHIELD_FEATURES, portfolio.shape[-1],
                             "portfolio")
    out = []
    for row in samples.iloc[order].itertuples(index=False):
        a = assets.index(row.asset)
        out.append(
            ExtremeState(
                sample=int(row.sample),
                asset=row.asset,
                direction=row.trade,
                size=float(row.size),
                exposure=float(row.exposure),
                portfolio=dict(
                    zip(portfolio_names, map(float, portfolio[row.sample, a]), strict=True)
                ),
                market_last=dict(
                    zip(feature_names, map(float, market[row.sample, -1, a]), strict=True)
                ),
            )
        )
    return tuple(out)


def _names(known: tuple[str, ...], n: int, prefix: str) -> tuple[str, ...]:
    """Known feature names where the count matches (extra features get generic names)."""
    return (
        known
        if len(known) == n
        else tuple(known[:n]) + tuple(f"{prefix}_{i}" for i in range(len(known), n))
    )


def _mean(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None


def _jsonable(value: Any) -> Any:
    """Dataclasses, tuples and numpy scalars as JSON types; NaN and inf as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
