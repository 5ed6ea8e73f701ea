"""Performance metrics of a backtest, computed from a :class:`BacktestResult` alone.

Every metric is a plain function of arrays (here, in ``risk.returns`` for the return and
equity series maths shared with risk: volatility, step returns, drawdowns, or in
``backtest.sharpe`` for Sharpe, PSR/DSR), so reports, walk-forward stitching and the
tests reuse the same definitions; ``compute_metrics`` only wires them to a result.
Returns are the simple per-decision-step returns of the equity curve and everything is
annualised with the result's ``periods_per_year`` (counted from the bar spacing), never
a daily-data constant.

:class:`Metrics` is the schema of the metrics dict and of a report's metrics.json:
``compute_metrics`` writes exactly its keys, backtest.report writes them (plus
``BASELINES_KEY`` and ``SAMPLE_KEY``) to ``METRICS_FILE``, and readers such as llm.facts
name keys from it, so a renamed metric fails a test instead of silently reading nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, TypedDict

import numpy as np
import pandas as pd

from backtest.result import BacktestResult
from backtest.sharpe import (
    ZERO_VOL,
    deflated_sharpe_ratio,
    moments,
    probabilistic_sharpe_ratio,
    sharpe_ratio,
    sortino_ratio,
)
from envs.ledger import LEDGER_COLUMNS
from risk.returns import (
    annualized_volatility,
    longest_underwater,
    max_drawdown,
    per_period_rate,
    step_returns,
)

METRICS_FILE: Final = "metrics.json"
"""A report folder's metrics (backtest.report writes it; llm.facts reads it)."""
STEPS_FILE: Final = "steps.parquet"
"""A report folder's per-step series (its index: the span the metrics describe)."""
BASELINES_KEY: Final = "baselines"
"""Key of metrics.json holding {baseline name: its metrics}."""
SAMPLE_KEY: Final = "sample"
"""Key of metrics.json saying whether the span is in or out of sample (backtest.guard)."""


class Metrics(TypedDict, total=False):
    """What ``compute_metrics`` returns, key by key (defined in its docstring), in order;
    the benchmark keys only with a benchmark, the VaR/ES keys only with a confidence."""

    n_steps: int
    total_return: float
    annualized_return: float
    annualized_volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_duration_steps: int
    max_drawdown_duration_days: float
    skewness: float
    excess_kurtosis: float
    probabilistic_sharpe: float
    deflated_sharpe: float
    n_trials: int
    n_trades: int
    open_trades: int
    win_rate: float
    profit_factor: float
    avg_trade_pnl: float
    step_win_rate: float
    turnover: float
    exposure: float
    mean_leverage: float
    fees: float
    funding: float
    impact: float
    spread: float
    liquidations: int
    bad_debt: float
    benchmark_total_return: float
    excess_return: float
    beta: float
    correlation: float
    information_ratio: float
    var_historical: float
    es_historical: float
    var_cornish_fisher: float
    es_cornish_fisher: float


METRIC_KEYS: Final = tuple(Metrics.__annotations__)
"""Every key of :class:`Metrics`, in compute_metrics' order."""

TRADE_COLUMNS = ("asset", "side", "open_time", "close_time", "open_bar", "close_bar",
                 "entry_notional", "gross_pnl", "fees", "spread", "impact", "funding",
                 "net_pnl", "exit_kind", "closed")
_POSITION_KINDS = frozenset({"fill", "stop_loss", "take_profit", "liquidation", "time_stop"})
_QTY_TOL = 1e-9
"""Relative size below which a position left by a closing fill counts as flat."""
_DUST_NOTIONAL = 1e-6
"""Notional (USDC) below which a position is float dust, not a position."""


def _new_trade(asset: str, qty: float, row) -> dict:
    return {"asset": asset, "side": 1 if qty > 0 else -1, "open_time": row.timestamp,
            "close_time": pd.NaT, "open_bar": int(row.bar), "close_bar": -1,
            "entry_notional": 0.0, "gross_pnl": 0.0, "fees": 0.0, "spread": 0.0,
            "impact": 0.0, "funding": 0.0, "exit_kind": "", "closed": False}


def _charge(trade: dict, row, share: float, pnl: float = 0.0, notional: float = 0.0) -> None:
    trade["gross_pnl"] += pnl
    trade["entry_notional"] += notional
    trade["fees"] += share * (row.fee + row.liquidation_fee)
    trade["spread"] += share * row.spread
    trade["impact"] += share * row.impact


def trades_from_ledger(ledger: pd.DataFrame) -> pd.DataFrame:
    """Round trips per asset, one row each, in opening order (columns ``TRADE_COLUMNS``).

    A trade opens when an asset's position leaves zero and closes when a fill, stop,
    take-profit or liquidation brings it back to zero; adds and partial closes stay
    in the trade. A fill that crosses zero closes the trade and opens the opposite one
    with the remainder, its costs split pro rata by quantity. Per trade:

    - ``gross_pnl``: the realised PnL of its fills (the reducing ones, against the entry);
    - ``fees`` (trading plus liquidation fees), ``spread``, ``impact``: costs of its fills;
    - ``funding``: funding paid while it was open (negative when received);
    - ``net_pnl = gross_pnl - fees - spread - impact - funding``: what the round trip
      added to the wallet, the number win rates and profit factors are counted on;
    - ``entry_notional``: notional of its opening and adding fills;
    - ``exit_kind``: the closing row's kind; ``closed`` is False (with ``close_bar`` -1)
      for a trade still open at the ledger's end, whose PnL so far is reported.

    Cancel rows trade nothing; the account-level bad-debt row (empty asset) belongs to
    no trade. Funding on an asset with no open trade means the ledger did not start flat,
    which is an error, unless its notional is float dust (a TWAP's clips can sum to the
    position give or take 1e-14 units): that belongs to the trade that left it.
    """
    missing = [c for c in LEDGER_COLUMNS if c not in ledger.columns]
    if missing:
        raise ValueError(f"ledger lacks columns {missing} (see envs.ledger.LEDGER_COLUMNS)")
    position: dict[str, float] = {}
    live: dict[str, dict] = {}
    closed: dict[str, dict] = {}  # each asset's last closed trade
    done: list[dict] = []
    for row in ledger.itertuples(index=False):
        asset, kind, qty = row.asset, row.kind, float(row.qty)
        if kind == "funding" and asset:
            owner = live.get(asset)
            if owner is None and abs(row.notional) <= _DUST_NOTIONAL:
                owner = closed.get(asset)  # float dust a closing fill left behind
            if owner is None:
                raise ValueError(f"funding on {asset} at bar {row.bar} with no open position: "
                                 "the ledger must start flat")
            owner["funding"] += row.funding
        if kind not in _POSITION_KINDS or not asset or qty == 0.0:
            continue
        pos = position.get(asset, 0.0)
        if pos == 0.0 or (pos > 0.0) == (qty > 0.0):
            trade = live.setdefault(asset, _new_trade(asset, qty, row))
            _charge(trade, row, 1.0, pnl=row.realized_pnl, notional=abs(qty) * row.price)
            position[asset] = pos + qty
            continue
        share = min(1.0, abs(pos) / abs(qty))
        trade = live[asset]
        _charge(trade, row, share, pnl=row.realized_pnl)
        new = 0.0 if abs(abs(qty) - abs(pos)) <= _QTY_TOL * abs(pos) else pos + qty
        if new == 0.0 or (new > 0.0) != (pos > 0.0):
            trade.update(close_time=row.timestamp, close_bar=int(row.bar), exit_kind=kind,
                         closed=True)
            done.append(live.pop(asset))
            closed[asset] = done[-1]
            if new != 0.0:
                live[asset] = _new_trade(asset, new, row)
                _charge(live[asset], row, 1.0 - share, notional=abs(new) * row.price)
        position[asset] = new
    records = sorted(done + list(live.values()), key=lambda t: t["open_bar"])
    frame = pd.DataFrame.from_records(records, columns=[c for c in TRADE_COLUMNS if c != "net_pnl"])
    frame = frame.astype({"side": np.int64, "open_bar": np.int64, "close_bar": np.int64,
                          "entry_notional": float, "gross_pnl": float, "fees": float,
                          "spread": float, "impact": float, "funding": float, "closed": bool,
                          "asset": str, "exit_kind": str})
    for col in ("open_time", "close_time"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    frame["net_pnl"] = (frame["gross_pnl"] - frame["fees"] - frame["spread"] - frame["impact"]
                        - frame["funding"])
    return frame[list(TRADE_COLUMNS)]


def compute_metrics(
    result: BacktestResult,
    n_trials: int = 1,
    var_confidence: float | None = 0.95,
    trial_sharpes: Sequence[float] | None = None,
) -> dict[str, float]:
    """Every headline number of one backtest, as a flat JSON-serialisable dict
    (:class:`Metrics`: exactly METRIC_KEYS, less those a run without a benchmark or VaR
    confidence lacks).

    Returns are ``r_t = e_t / e_{t-1} - 1`` over the ``n_steps`` decision steps; ``P`` is
    ``periods_per_year``; ``rf = (1 + risk_free_rate) ** (1 / P) - 1`` per step. Keys:

    - ``total_return`` ``e_T / e_0 - 1``; ``annualized_return`` the CAGR
      ``(e_T / e_0) ** (P / n_steps) - 1`` (-1 if equity ended at zero; extreme, even
      inf, for very short runs); ``annualized_volatility`` ``std(r, ddof=1) * sqrt(P)``.
    - ``sharpe``, ``sortino``: of ``r - rf``, annualised by ``sqrt(P)`` (backtest.sharpe);
      ``calmar`` ``annualized_return / max_drawdown``.
    - ``max_drawdown`` the deepest fall from a running peak (fraction);
      ``max_drawdown_duration_steps`` / ``_days`` the longest stretch under water, in
      steps and in calendar days between its timestamps (NaN without a DatetimeIndex).
    - ``n_trades`` closed round trips, ``open_trades`` still open (trades_from_ledger);
      ``win_rate`` the share of closed trades with ``net_pnl > 0``; ``profit_factor``
      gains of winners / losses of losers (inf if no trade lost); ``avg_trade_pnl`` the
      mean ``net_pnl`` (USDC); ``step_win_rate`` the share of steps with ``r > 0`` among
      steps with ``r != 0``.
    - ``turnover`` annualised traded notional over mean equity,
      ``sum(traded_notional[1:]) / mean(equity) * P / n_steps``; ``exposure`` the share
      of steps ending with any open position; ``mean_leverage`` the mean gross leverage
      at the steps' ends (steps at zero equity left out).
    - ``fees`` (trading plus liquidation fees), ``funding``, ``impact``, ``spread``: USDC
      paid over the run; ``liquidations`` liquidation events (bars); ``bad_debt`` USDC.
    - ``var_historical``, ``var_cornish_fisher``, ``es_historical``, ``es_cornish_fisher``:
      one-step VaR and expected shortfall of ``r`` at ``var_confidence`` (risk.var;
      positive loss fractions); NaN when the run is too short for risk.var at that
      confidence; left out when ``var_confidence`` is None.
    - ``skewness``, ``excess_kurtosis`` of ``r`` (normal: 0, 0).
    - ``probabilistic_sharpe`` P(true Sharpe > 0); ``deflated_sharpe`` P(true Sharpe >
      expected best of ``n_trials`` luck-only trials), both from the per-step Sharpe. The
      trials' Sharpe variance comes from ``trial_sharpes`` (annualised, like ``sharpe``;
      then ``n_trials`` is at least their count), else from the zero-skill assumption of
      :func:`backtest.sharpe.deflated_sharpe_ratio`.
    - with a benchmark: ``benchmark_total_return``, ``excess_return`` (total return minus
      the benchmark's), ``beta`` ``cov(r, b) / var(b)``, ``correlation``, and
      ``information_ratio`` ``mean(r - b) / std(r - b, ddof=1) * sqrt(P)``.

    Undefined values are NaN, never a warning: ratios over zero volatility, drawdown or
    downside (a flat or monotone curve), trade statistics with no closed trade, moments
    and Sharpe-based values with fewer than two steps.
    """
    equity = result.equity.to_numpy(dtype=np.float64)
    r = step_returns(equity)
    out: dict[str, float] = {"n_steps": len(r)}
    with np.errstate(all="ignore"):
        out |= _return_metrics(r, equity, result, n_trials, trial_sharpes)
        out |= _trade_metrics(result.ledger, r)
        out |= _exposure_and_costs(result, equity)
        if result.benchmark is not None:
            out |= _benchmark_metrics(result, r, out["total_return"])
    if var_confidence is not None:
        out |= _tail_metrics(r, var_confidence)
    return out


def _return_metrics(r, equity, result, n_trials, trial_sharpes) -> dict[str, float]:
    ppy, n = result.periods_per_year, len(r)
    rf = per_period_rate(result.risk_free_rate, ppy)
    growth = equity[-1] / equity[0]
    cagr = float(np.power(growth, ppy / n) - 1.0) if growth > 0.0 else -1.0
    depth, _, _, _ = max_drawdown(equity)
    start, end = longest_underwater(equity)
    index = result.steps.index
    days = math.nan
    if isinstance(index, pd.DatetimeIndex):
        days = (index[end] - index[start]).total_seconds() / 86400.0
    skew, kurt = moments(r)
    sr = sharpe_ratio(r, rf, 1.0)
    var_sharpe = None
    if trial_sharpes is not None:
        n_trials = max(n_trials, len(trial_sharpes))
        if len(trial_sharpes) >= 2:
            var_sharpe = float(np.var(np.asarray(trial_sharpes, dtype=float), ddof=1)) / ppy
    return {
        "total_return": float(growth - 1.0),
        "annualized_return": cagr,
        "annualized_volatility": annualized_volatility(r, ppy),
        "sharpe": sharpe_ratio(r, rf, ppy),
        "sortino": sortino_ratio(r, rf, ppy),
        "calmar": cagr / depth if depth > 0.0 else math.nan,
        "max_drawdown": depth,
        "max_drawdown_duration_steps": end - start,
        "max_drawdown_duration_days": float(days),
        "skewness": skew,
        "excess_kurtosis": kurt,
        "probabilistic_sharpe": probabilistic_sharpe_ratio(sr, n, skew, kurt),
        "deflated_sharpe": deflated_sharpe_ratio(sr, n, n_trials, var_sharpe, skew, kurt),
        "n_trials": int(n_trials),
    }


def _trade_metrics(ledger: pd.DataFrame, r: np.ndarray) -> dict[str, float]:
    trades = trades_from_ledger(ledger)
    pnl = trades.loc[trades["closed"], "net_pnl"].to_numpy()
    gains, losses = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    if len(pnl) == 0:
        factor = math.nan
    elif losses > 0.0:
        factor = gains / losses
    else:
        factor = math.inf if gains > 0.0 else math.nan
    moved = r[r != 0.0]
    return {
        "n_trades": len(pnl),
        "open_trades": int((~trades["closed"]).sum()),
        "win_rate": float(np.mean(pnl > 0)) if len(pnl) else math.nan,
        "profit_factor": factor,
        "avg_trade_pnl": float(np.mean(pnl)) if len(pnl) else math.nan,
        "step_win_rate": float(np.mean(moved > 0)) if len(moved) else math.nan,
    }


def _exposure_and_costs(result: BacktestResult, equity: np.ndarray) -> dict[str, float]:
    steps, n = result.steps, len(equity) - 1
    traded = float(steps["traded_notional"].to_numpy()[1:].sum())
    positions = result.positions.to_numpy(dtype=np.float64)[1:]
    leverage = steps["leverage"].to_numpy(dtype=np.float64)[1:]
    leverage = leverage[np.isfinite(leverage)]
    ledger = result.ledger
    out = {
        "turnover": traded / float(np.mean(equity)) * result.periods_per_year / n,
        "exposure": float(np.mean((positions != 0.0).any(axis=1))),
        "mean_leverage": float(np.mean(leverage)) if len(leverage) else math.nan,
    }
    for col in ("fees", "funding", "impact", "spread"):
        out[col] = float(steps[col].iloc[-1] - steps[col].iloc[0])
    out["liquidations"] = int(ledger.loc[ledger["kind"] == "liquidation", "bar"].nunique())
    out["bad_debt"] = float(ledger["bad_debt"].sum())
    return out


def _benchmark_metrics(result: BacktestResult, r: np.ndarray, total_return: float) -> dict:
    bench = result.benchmark
    if not bench.index.equals(result.steps.index):
        raise ValueError("benchmark must share the steps index (same steps, same timestamps)")
    b_equity = bench.to_numpy(dtype=np.float64)
    b = step_returns(b_equity)
    total = float(b_equity[-1] / b_equity[0] - 1.0)
    beta = corr = math.nan
    if len(r) >= 2:
        cov = np.cov(r, b, ddof=1)
        if math.sqrt(cov[1, 1]) > ZERO_VOL:
            beta = float(cov[0, 1] / cov[1, 1])
            if math.sqrt(cov[0, 0]) > ZERO_VOL:
                corr = float(cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1]))
    return {
        "benchmark_total_return": total,
        "excess_return": total_return - total,
        "beta": beta,
        "correlation": corr,
        "information_ratio": sharpe_ratio(r - b, 0.0, result.periods_per_year),
    }


def _tail_metrics(r: np.ndarray, confidence: float) -> dict[str, float]:
    from risk.var import expected_shortfall, value_at_risk

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"var_confidence must be in (0, 1), got {confidence}")
    out = {}
    for method in ("historical", "cornish_fisher"):
        for key, fn in (("var", value_at_risk), ("es", expected_shortfall)):
            try:
                out[f"{key}_{method}"] = float(fn(r, confidence=confidence, method=method))
            except ValueError:  # risk.var declines too short a history for this confidence
                out[f"{key}_{method}"] = math.nan
    return out


def metrics_table(metrics_by_name: dict[str, dict]) -> pd.DataFrame:
    """Metrics of several runs side by side: one row per metric (in first-seen order), one
    column per run (e.g. the policy, then its baselines); NaN where a run lacks a metric."""
    if not metrics_by_name:
        raise ValueError("metrics_table needs at least one run's metrics")
    keys = list(dict.fromkeys(k for metrics in metrics_by_name.values() for k in metrics))
    columns = {name: [m.get(k, math.nan) for k in keys] for name, m in metrics_by_name.items()}
    return pd.DataFrame(columns, index=pd.Index(keys, name="metric"))
