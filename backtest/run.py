"""A complete backtest: data span, policy and baselines on the simulator, metrics,
regime analysis and the report.

:func:`backtest_trained` is the one entry point for a trained run on a market: the
``quantum backtest`` CLI and the Serve ``BacktestRunner`` both call it, so both pick the
same span, guard it against the run's training data and check the spaces. Rules
(``--policy``) and walk-forward windows (``backtest.walk_forward``) share its parts:
:func:`run_module`, :func:`run_baselines` and :func:`analyse`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from backtest.baselines import RULES
from backtest.engine import benchmark_equity, run_policy
from backtest.guard import SampleCheck, check, enforce, same_market
from backtest.result import BacktestResult
from envs.config import EnvConfig
from envs.core.layout import M_CLOSE
from envs.data import MarketArrays
from envs.market_spec import MarketSpec

if TYPE_CHECKING:
    from rl.checkpoint import TrainedRun

log = logging.getLogger(__name__)


class BacktestOptions(BaseModel):
    """The seed's backtest options; None keeps the value the policy was trained with."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    initial_capital: float | None = Field(None, gt=0, description="Starting wallet (USDC).")
    risk_free_rate: float | None = Field(None, description="Annual rate for Sharpe/Sortino.")
    commission: float | None = Field(
        None, ge=0, lt=0.01, description="Taker fee on traded notional (maker fee unchanged)."
    )
    slippage: float | None = Field(
        None,
        ge=0,
        lt=0.05,
        description="Floor of the half-spread paid on taker fills, as a fraction of price "
        "(on top of square-root impact, which the simulator always charges).",
    )
    max_leverage: float | None = Field(None, gt=0, le=125, description="Leverage cap.")
    shield: bool | None = Field(
        None, description="Risk shield on or off (envs.config.ShieldConfig; None: as the run "
        "was trained). Its settings are the run's, or the defaults if it trained without."
    )
    benchmark: str | None = Field(
        "BTC", description="Asset of the buy-and-hold benchmark line (None: no benchmark)."
    )
    start: str | None = Field(None, description="First timestamp (UTC) of the span.")
    end: str | None = Field(None, description="Last timestamp (UTC) of the span.")
    last_days: float | None = Field(
        None, gt=0, description="Only the span's last N days (after start/end are applied)."
    )
    baselines: tuple[str, ...] = Field(
        ("flat", "buy_and_hold", "momentum"), description="Rule baselines run alongside."
    )
    deterministic: bool = Field(True, description="Mode of each head instead of sampling.")
    fast_path: bool = Field(
        True,
        description="Run the hierarchical policy's numba twin (backtest.fast) where it applies; "
        "off: the torch module every step, as serving and live trading run it (their "
        "results then match to the last bit; the twin's float32 heads agree to ~1e-6).",
    )
    n_trials: int = Field(
        1, ge=1, description="Configurations tried before picking this policy (deflated Sharpe)."
    )

    def env_config(self, base: EnvConfig) -> EnvConfig:
        """The training env config with these overrides applied."""
        update: dict[str, Any] = {}
        if self.initial_capital is not None:
            update["initial_balance"] = self.initial_capital
        if self.risk_free_rate is not None:
            update["risk_free_rate"] = self.risk_free_rate
        costs: dict[str, Any] = {}
        if self.commission is not None:
            costs["taker_fee"] = self.commission
        if self.slippage is not None:
            costs["min_half_spread"] = self.slippage
            costs["max_half_spread"] = max(base.costs.max_half_spread, self.slippage)
        if costs:
            update["costs"] = base.costs.model_copy(update=costs)
        if self.max_leverage is not None:
            update["limits"] = base.limits.model_copy(update={"max_leverage": self.max_leverage})
        if self.shield is not None:
            update["shield"] = base.shield.model_copy(update={"enabled": self.shield})
        return EnvConfig.model_validate({**base.model_dump(), **_dumped(update)})


def _dumped(update: dict[str, Any]) -> dict[str, Any]:
    return {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in update.items()}


def span_bars(
    data: MarketArrays,
    config: EnvConfig,
    start: str | None,
    end: str | None,
    last_days: float | None = None,
) -> tuple[int, int]:
    """Bar indices of [start, end] clipped to the usable data (warm-up excluded); with
    ``last_days``, only the last N days of that span."""
    stamps = data.timestamps
    first = max(data.first_valid, config.window - 1)
    lo = first if start is None else max(first, int(np.searchsorted(stamps, _ns(start))))
    hi = data.n_bars - 1
    if end is not None:
        hi = min(hi, int(np.searchsorted(stamps, _ns(end), side="right")) - 1)
    if last_days is not None and hi > lo:
        cut = int(stamps[hi] - last_days * 86_400 * 10**9)
        lo = max(lo, int(np.searchsorted(stamps, cut)))
    if hi <= lo:
        raise ValueError(
            f"no usable bars between {start} and {end}: the data spans "
            f"{pd.Timestamp(stamps[first], tz='UTC')} .. {pd.Timestamp(stamps[-1], tz='UTC')}"
        )
    return lo, hi


def model_span(
    run: TrainedRun | None,
    market: MarketSpec,
    data: MarketArrays,
    config: EnvConfig,
    options: BacktestOptions,
    allow_in_sample: bool = False,
) -> tuple[int, int, SampleCheck]:
    """The bars a model's backtest runs on and whether they are out of sample.

    Without --start/--end/--last-days, on the market the model trained on, it is the
    model's untouched test part (from its manifest); any span is then checked against
    the model's training and validation parts (backtest.guard) and refused if it
    overlaps them, unless ``allow_in_sample``.
    """
    manifest = run.manifest if run is not None else None
    start, end = options.start, options.end
    chosen = start is not None or end is not None or options.last_days is not None
    test = run.test_span if run is not None else None
    if not chosen and test is not None and same_market(manifest, market):
        start, end = test
    lo, hi = span_bars(data, config, start, end, options.last_days)
    stamp = lambda i: pd.Timestamp(data.timestamps[i], tz="UTC")  # noqa: E731
    sample = enforce(check(manifest, market, stamp(lo), stamp(hi)), allow_in_sample)
    return lo, hi, sample


def _ns(stamp: str) -> int:
    ts = pd.Timestamp(stamp)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def resolve_asset(assets: tuple[str, ...], name: str) -> str:
    """'BTC' names 'BTC' or 'BTC/USDT:USDT'; unknown names are errors."""
    for asset in assets:
        if name.upper() in (asset.upper(), asset.split("/")[0].upper()):
            return asset
    raise ValueError(f"benchmark {name!r} is not one of the data's assets {list(assets)}")


def run_module(
    module, data: MarketArrays, config: EnvConfig, start: int, end: int, name: str,
    deterministic: bool = True, meta: Mapping[str, Any] | None = None, fast_path: bool = True,
) -> BacktestResult:
    """A trained module on the simulator: the fast path when it applies, else the
    general loop (stochastic actions, the MLP baseline, a text encoder)."""
    from backtest.fast import run_hierarchical, supports
    from rl.evaluate import module_policy

    meta = dict(meta or {})
    if fast_path and deterministic and supports(module):
        return run_hierarchical(module, data, config, start, end, name, meta)
    return run_policy(module_policy(module, deterministic), data, config, start, end, name, meta)


def run_baselines(
    data: MarketArrays, config: EnvConfig, start: int, end: int, names: tuple[str, ...]
) -> dict[str, BacktestResult]:
    """The rule baselines on the same simulator and span, without stops (a buy-and-hold
    that a stop sells and the rule buys back the next step is not buy-and-hold)."""
    unknown = sorted(set(names) - set(RULES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; known: {sorted(RULES)}")
    config = config.model_copy(
        update={"execution": config.execution.model_copy(update={"stops": False})}
    )
    return {
        name: run_policy(RULES[name](data, config), data, config, start, end, name)
        for name in names
    }


def with_benchmark(result: BacktestResult, asset: str | None) -> BacktestResult:
    """The result with its buy-and-hold benchmark line attached (same index)."""
    if asset is None:
        return result
    resolved = resolve_asset(result.assets, asset)
    line = benchmark_equity(result.prices, resolved, result.initial_capital)
    return replace(result, benchmark=line)


def regime_table(result: BacktestResult, labels: pd.Series) -> pd.DataFrame:
    """Performance per market regime: the step returns grouped by the regime label of the
    bar each step started from (labels use past data only, risk.regimes)."""
    from backtest.sharpe import per_period_rate, sharpe_ratio

    returns = result.returns
    start_labels = labels.reindex(result.steps.index).shift(1).iloc[1:]
    rf = per_period_rate(result.risk_free_rate, result.periods_per_year)
    rows = []
    for label, group in returns.groupby(start_labels.astype(str), observed=True):
        rows.append(
            {
                "regime": label,
                "steps": len(group),
                "share": len(group) / len(returns),
                "total_return": float(np.prod(1.0 + group.to_numpy()) - 1.0),
                "mean_return": float(group.mean()),
                "sharpe": sharpe_ratio(group.to_numpy(), rf, result.periods_per_year),
                "hit_rate": float((group > 0).mean()),
            }
        )
    return pd.DataFrame(rows).sort_values("steps", ascending=False, ignore_index=True)


@dataclass(frozen=True)
class BacktestRun:
    """Everything one `quantum backtest` produced."""

    result: BacktestResult
    metrics: dict[str, float]
    baselines: dict[str, BacktestResult]
    baseline_metrics: dict[str, dict[str, float]]
    regimes: pd.DataFrame
    report: Path | None
    sample: SampleCheck | None = None
    """In or out of sample (backtest.guard); None where nothing was checked."""


def analyse(
    result: BacktestResult,
    data: MarketArrays,
    baselines: dict[str, BacktestResult],
    options: BacktestOptions,
    output_dir: Path | None,
    walk_forward: pd.DataFrame | None = None,
    config: EnvConfig | None = None,
    sample: SampleCheck | None = None,
) -> BacktestRun:
    """Benchmark, metrics, regimes and (with ``output_dir``) the report of a finished run;
    ``sample`` (backtest.guard) heads the report."""
    from backtest.metrics import compute_metrics
    from risk.regimes import market_regimes

    result = with_benchmark(result, options.benchmark)
    baselines = {k: with_benchmark(v, options.benchmark) for k, v in baselines.items()}
    metrics = compute_metrics(result, n_trials=options.n_trials)
    baseline_metrics = {k: compute_metrics(v) for k, v in baselines.items()}
    index = pd.to_datetime(data.timestamps, utc=True)
    close = pd.DataFrame(data.mkt[:, :, M_CLOSE], index=index, columns=list(data.assets))
    focus = resolve_asset(data.assets, options.benchmark) if options.benchmark else None
    labels = market_regimes(close[focus] if focus else close)
    regimes = regime_table(result, labels)
    report = None
    if output_dir is not None:
        from backtest.report import write_report
        from backtest.risk_view import final_risk_report

        report = write_report(
            Path(output_dir), result, metrics, baselines=baselines,
            baseline_metrics=baseline_metrics, regime_labels=labels.reindex(result.steps.index),
            regime_table=regimes, walk_forward=walk_forward,
            risk_report=final_risk_report(result, data, config or EnvConfig()), sample=sample,
        )
    return BacktestRun(result, metrics, baselines, baseline_metrics, regimes, report, sample)


def backtest_trained(
    run: TrainedRun,
    market: MarketSpec,
    options: BacktestOptions,
    output_dir: Path | None,
    *,
    allow_in_sample: bool = False,
    name: str = "policy",
) -> BacktestRun:
    """A trained run's policy and the rule baselines on ``market``, with metrics and
    (with ``output_dir``) the report: the span from the options or the run's test part,
    refused when in sample unless allowed (model_span); the spaces checked first."""
    data = market.arrays()
    config = options.env_config(run.env)
    lo, hi, sample = model_span(run, market, data, config, options, allow_in_sample)
    run.check_spaces(data, config)
    result = run_module(
        run.module, data, config, lo, hi, name, options.deterministic,
        meta={"checkpoint": str(run.checkpoint)}, fast_path=options.fast_path,
    )
    others = run_baselines(data, config, lo, hi, options.baselines)
    return analyse(result, data, others, options, output_dir, None, config, sample)
