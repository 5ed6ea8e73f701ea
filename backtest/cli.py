"""`quantum backtest` and `quantum analyze-bias`: a trained policy (or a rule) on the
simulator, with the seed's options, a report and a one-screen summary."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from backtest.run import BacktestOptions

console = Console()
log = logging.getLogger(__name__)

_SHOWN = ("total_return", "annualized_return", "sharpe", "sortino", "max_drawdown",
          "win_rate", "profit_factor", "turnover", "fees", "funding", "liquidations",
          "deflated_sharpe")  # fmt: skip


def market_env_config(
    base: dict[str, Any], data_path: Path | None, synthetic_seed: int | None,
    synthetic_days: float | None, symbols: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The training env_config with the market swapped: a store folder (and its
    symbols), or a fresh synthetic market (another seed: data the policy never saw)."""
    keep = {k: v for k, v in base.items() if k not in ("start_range", "start_fraction")}
    if symbols:
        keep["symbols"] = [s.strip() for s in symbols.split(",") if s.strip()]
    if data_path is not None:
        for key in ("synthetic_days", "synthetic_seed"):
            keep.pop(key, None)
        keep["data_dir"] = str(data_path)
    elif synthetic_seed is not None or synthetic_days is not None:
        keep.pop("data_dir", None)
        if synthetic_seed is not None:
            keep["synthetic_seed"] = synthetic_seed
        if synthetic_days is not None:
            keep["synthetic_days"] = synthetic_days
    return keep


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Bad input (paths, spans, spaces, options) ends the command with its message, not a
    traceback: the messages say what was wrong and what to do."""
    try:
        yield
    except (ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(2) from err


def _summary(run, title: str) -> Table:
    from backtest.metrics import metrics_table

    frame = metrics_table({run.result.name: run.metrics, **run.baseline_metrics})
    table = Table(title=title)
    table.add_column("metric")
    for name in frame.columns:
        table.add_column(str(name), justify="right")
    for key in _SHOWN:
        if key in frame.index:
            table.add_row(key, *(f"{v:,.4g}" for v in frame.loc[key]))
    return table


def backtest_command(
    model_path: Annotated[
        Path | None, typer.Option(help="Run folder or checkpoint of a trained policy.")
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="A rule instead of a model: flat, buy_and_hold, momentum.")
    ] = None,
    data_path: Annotated[
        Path | None, typer.Option(help="Market store (quantum data ...); default: the run's data.")
    ] = None,
    symbols: Annotated[
        str | None, typer.Option(help="Symbols in the store (default: the run's, or BTC,ETH,SOL).")
    ] = None,
    output_dir: Annotated[Path, typer.Option(help="Report folder.")] = Path("results/backtest"),
    initial_capital: Annotated[float | None, typer.Option(help="Starting USDC.")] = None,
    risk_free_rate: Annotated[float | None, typer.Option(help="Annual risk-free rate.")] = None,
    commission: Annotated[float | None, typer.Option(help="Taker fee (0.0004 = 4 bp).")] = None,
    slippage: Annotated[float | None, typer.Option(help="Half-spread floor (fraction).")] = None,
    max_leverage: Annotated[float | None, typer.Option(help="Leverage cap.")] = None,
    benchmark: Annotated[str, typer.Option(help="Buy-and-hold benchmark asset.")] = "BTC",
    start: Annotated[str | None, typer.Option(help="First timestamp (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Last timestamp (UTC).")] = None,
    last_days: Annotated[float | None, typer.Option(help="Only the last N days.")] = None,
    baselines: Annotated[
        str, typer.Option(help="Comma-separated rule baselines run alongside ('' for none).")
    ] = "flat,buy_and_hold,momentum",
    stochastic: Annotated[bool, typer.Option(help="Sample actions instead of the mode.")] = False,
    n_trials: Annotated[
        int, typer.Option(help="Configurations tried before this one (deflated Sharpe).")
    ] = 1,
    synthetic_seed: Annotated[
        int | None, typer.Option(help="Backtest on a fresh synthetic market with this seed.")
    ] = None,
    synthetic_days: Annotated[float | None, typer.Option(help="Days of that market.")] = None,
    walk_forward: Annotated[
        bool, typer.Option(help="Train on rolling windows and test on the next (see README).")
    ] = False,
    train_bars: Annotated[int, typer.Option(help="Walk-forward train window (bars).")] = 43_200,
    test_bars: Annotated[int, typer.Option(help="Walk-forward test window (bars).")] = 10_080,
    purge_bars: Annotated[int, typer.Option(help="Bars between train and test.")] = 60,
    embargo_bars: Annotated[int, typer.Option(help="Bars skipped after each test.")] = 0,
    anchored: Annotated[bool, typer.Option(help="Grow the train window from the start.")] = False,
    windows: Annotated[int | None, typer.Option(help="At most this many windows.")] = None,
    train_steps: Annotated[int, typer.Option(help="Env steps of training per window.")] = 100_000,
) -> None:
    """Backtest a trained policy (or a rule) on the training simulator; write a report."""
    if (model_path is None) == (policy is None):
        raise typer.BadParameter("give --model-path or --policy (one of them)")
    with _user_errors():
        _backtest(**locals())


def _backtest(
    model_path, policy, data_path, symbols, output_dir, initial_capital, risk_free_rate, commission,
    slippage, max_leverage, benchmark, start, end, last_days, baselines, stochastic, n_trials,
    synthetic_seed, synthetic_days, walk_forward, train_bars, test_bars, purge_bars,
    embargo_bars, anchored, windows, train_steps,
) -> None:  # fmt: skip
    from envs.config import EnvConfig
    from envs.registry import market_for
    from rl.config import TrainConfig

    options = BacktestOptions(
        initial_capital=initial_capital, risk_free_rate=risk_free_rate, commission=commission,
        slippage=slippage, max_leverage=max_leverage, benchmark=benchmark or None, start=start,
        end=end, last_days=last_days, baselines=tuple(b for b in baselines.split(",") if b),
        deterministic=not stochastic, n_trials=n_trials,
    )  # fmt: skip
    trained = None
    if model_path is not None:
        from backtest.loading import load_trained

        trained = load_trained(model_path)
    train_config = trained.config if trained is not None else TrainConfig()
    env_config = market_env_config(
        train_config.env_config, data_path, synthetic_seed, synthetic_days, symbols
    )
    data = market_for(env_config)
    config = options.env_config(EnvConfig(**env_config.get("env", {})))
    from backtest.run import analyse, run_baselines, run_module, span_bars

    lo, hi = span_bars(data, config, options.start, options.end, options.last_days)
    wf_table = None
    if walk_forward:
        from backtest.metrics import compute_metrics
        from backtest.walk_forward import WalkForwardConfig, run_walk_forward, window_table

        wf = WalkForwardConfig(
            train_bars=train_bars, test_bars=test_bars, purge_bars=purge_bars,
            embargo_bars=embargo_bars, anchored=anchored, max_windows=windows,
            train_steps=train_steps,
        )  # fmt: skip
        base = train_config.model_copy(update={"env_config": env_config})
        wins, results, result = run_walk_forward(
            base, data, config, (lo, hi), wf, output_dir / "training",
            on_window=lambda w, r: console.print(
                f"window {w.index}: test return {r.returns.add(1).prod() - 1:+.2%}"
            ),
        )  # fmt: skip
        metrics = [compute_metrics(r) for r in results]
        wf_table = window_table(wins, results, data.timestamps, metrics)
        lo, hi = wins[0].test[0], wins[-1].test[1]
    elif trained is not None:
        _check_spaces(trained.module, data, config)
        result = run_module(
            trained.module, data, config, lo, hi, str(model_path), options.deterministic,
            meta={"checkpoint": str(trained.checkpoint)},
        )  # fmt: skip
    else:
        result = run_baselines(data, config, lo, hi, (policy,))[policy]
    others = run_baselines(data, config, lo, hi, tuple(b for b in options.baselines if b != policy))
    run = analyse(result, data, others, options, output_dir, wf_table, config)
    console.print(_summary(run, f"backtest {result.steps.index[0]} .. {result.steps.index[-1]}"))
    if result.ended_early:
        console.print(f"[red]the run ended early: {result.ended_early}[/]")
    console.print(f"report: {run.report}")


def _check_spaces(module, data, config) -> None:
    from backtest.bias_spaces import check_action_space, check_observation_space
    from envs.spaces import action_space, observation_space

    obs = observation_space(config, data.n_assets, len(data.features))
    check_observation_space(module.observation_space, obs, assets=data.assets)
    check_action_space(module.action_space, action_space(config, data.n_assets), assets=data.assets)


def analyze_bias_command(
    model_path: Annotated[Path, typer.Option(help="Run folder or checkpoint.")],
    data_path: Annotated[
        Path | None, typer.Option(help="Market store; default: the run's data.")
    ] = None,
    num_samples: Annotated[int, typer.Option(help="Held-out states to sample.")] = 1000,
    output_dir: Annotated[Path, typer.Option(help="Folder for CSVs, charts, JSON.")] = Path(
        "results/bias"
    ),
    start: Annotated[str | None, typer.Option(help="Held-out span start (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Held-out span end (UTC).")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    synthetic_seed: Annotated[int | None, typer.Option(help="A fresh synthetic market.")] = None,
) -> None:
    """Per-asset action distributions and directional bias of a policy on held-out states."""
    with _user_errors():
        _analyze_bias(**locals())


def _analyze_bias(
    model_path, data_path, num_samples, output_dir, start, end, seed, synthetic_seed
) -> None:
    from backtest.bias import analyze_bias, sample_states
    from backtest.bias_plots import write_bias_outputs
    from backtest.loading import load_trained
    from backtest.run import span_bars
    from envs.config import EnvConfig
    from envs.registry import market_for
    from rl.evaluate import module_policy

    trained = load_trained(model_path)
    env_config = market_env_config(trained.config.env_config, data_path, synthetic_seed, None)
    data = market_for(env_config)
    config = EnvConfig(**env_config.get("env", {}))
    _check_spaces(trained.module, data, config)
    lo, hi = span_bars(data, config, start, end)
    last_start = max(lo, hi - config.bars_per_step * 40)
    states = sample_states(env_config, num_samples, seed, start_range=(lo, last_start))
    report = analyze_bias(
        module_policy(trained.module, False), states, data.assets,
        deterministic_policy=module_policy(trained.module, True), execution=config.execution,
    )  # fmt: skip
    paths = write_bias_outputs(report, output_dir)
    table = Table(title=f"action bias over {num_samples} held-out states")
    for column in ("asset", "short", "flat", "long", "verdict"):
        table.add_column(column)
    for row in report.per_asset:
        table.add_row(row.asset, f"{row.short_fraction:.0%}", f"{row.flat_fraction:.0%}",
                      f"{row.long_fraction:.0%}", row.flag)  # fmt: skip
    console.print(table)
    console.print(f"outputs: {output_dir} ({len(paths)} files)")
