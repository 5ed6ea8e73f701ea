"""`quantum backtest` and `quantum analyze-bias`: a trained policy (or a rule) on the
simulator, with the seed's options, a report and a one-screen summary."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from backtest.run import BacktestOptions
from envs.market_spec import MarketSpec
from rl.checkpoint import TrainedRun
from rl.cli_input import user_errors
from rl.config import TrainConfig

console = Console()
log = logging.getLogger(__name__)

EXCHANGE_HELP = (
    "Exchange in the store (default: the run's own on its store, else the store's only one)."
)
SYMBOLS_HELP = "Comma-separated symbols in the store (default: the model's, or BTC,ETH,SOL)."
IN_SAMPLE_HELP = (
    "Run on a span that overlaps the model's training or validation data (refused "
    "otherwise); every metric is then marked in-sample."
)
_SHOWN = ("total_return", "annualized_return", "sharpe", "sortino", "max_drawdown",
          "win_rate", "profit_factor", "turnover", "fees", "funding", "liquidations",
          "deflated_sharpe")


def evaluation_market(
    run: TrainedRun | None, data_path: Path | None, synthetic_seed: int | None,
    synthetic_days: float | None, symbols: str | None, exchange: str | None,
) -> MarketSpec:
    """The market a command reads: the run's (the defaults' for a rule), swapped for the
    store or synthetic seed the options name (MarketSpec.elsewhere), printed in a line."""
    base = run.market if run is not None else TrainConfig().market
    market = base.elsewhere(
        data_path, synthetic_seed, synthetic_days, symbols, exchange,
        run.recorded_assets if run is not None else None,
    )
    console.print(f"market: {market.describe()}", soft_wrap=True)
    return market


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
    exchange: Annotated[str | None, typer.Option(help=EXCHANGE_HELP)] = None,
    symbols: Annotated[str | None, typer.Option(help=SYMBOLS_HELP)] = None,
    output_dir: Annotated[Path, typer.Option(help="Report folder.")] = Path("results/backtest"),
    initial_capital: Annotated[float | None, typer.Option(help="Starting USDC.")] = None,
    risk_free_rate: Annotated[float | None, typer.Option(help="Annual risk-free rate.")] = None,
    commission: Annotated[float | None, typer.Option(help="Taker fee (0.0004 = 4 bp).")] = None,
    slippage: Annotated[float | None, typer.Option(help="Half-spread floor (fraction).")] = None,
    max_leverage: Annotated[float | None, typer.Option(help="Leverage cap.")] = None,
    shield: Annotated[bool | None, typer.Option(
        "--shield/--no-shield", help="Risk shield on or off (default: as the run trained).")
    ] = None,
    benchmark: Annotated[str, typer.Option(help="Buy-and-hold benchmark asset.")] = "BTC",
    start: Annotated[str | None, typer.Option(help="First timestamp (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Last timestamp (UTC).")] = None,
    last_days: Annotated[float | None, typer.Option(help="Only the last N days.")] = None,
    baselines: Annotated[
        str, typer.Option(help="Comma-separated rule baselines run alongside ('' for none).")
    ] = "flat,buy_and_hold,momentum",
    stochastic: Annotated[bool, typer.Option(help="Sample actions instead of the mode.")] = False,
    fast_path: Annotated[
        bool, typer.Option(help="The policy's numba twin (fast); off: the torch module each "
                           "step, as serving and `quantum live` run it (identical results).")
    ] = True,
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
    allow_in_sample: Annotated[bool, typer.Option(help=IN_SAMPLE_HELP)] = False,
) -> None:
    """Backtest a trained policy (or a rule) on the training simulator; write a report.
    A model runs on its run's untouched test part unless a span is given."""
    if (model_path is None) == (policy is None):
        raise typer.BadParameter("give --model-path or --policy (one of them)")
    with user_errors():  # bad paths, stores, spans, spaces: one line, exit code 2
        _backtest(**locals())


def _backtest(
    model_path, policy, data_path, exchange, symbols, output_dir, initial_capital, risk_free_rate,
    commission, slippage, max_leverage, shield, benchmark, start, end, last_days, baselines,
    stochastic, fast_path, n_trials, synthetic_seed, synthetic_days, walk_forward, train_bars,
    test_bars, purge_bars, embargo_bars, anchored, windows, train_steps, allow_in_sample,
) -> None:
    options = BacktestOptions(
        initial_capital=initial_capital, risk_free_rate=risk_free_rate, commission=commission,
        slippage=slippage, max_leverage=max_leverage, shield=shield,
        benchmark=benchmark or None, start=start,
        end=end, last_days=last_days, baselines=tuple(b for b in baselines.split(",") if b),
        deterministic=not stochastic, n_trials=n_trials, fast_path=fast_path,
    )
    trained = TrainedRun.open(model_path) if model_path is not None else None
    market = evaluation_market(trained, data_path, synthetic_seed, synthetic_days, symbols,
                               exchange)
    if trained is not None and not walk_forward:
        from backtest.run import backtest_trained

        run = backtest_trained(trained, market, options, output_dir,
                               allow_in_sample=allow_in_sample, name=str(model_path))
        console.print(f"sample: {run.sample.note}", soft_wrap=True)
        _finish(run)
        return
    from backtest.run import analyse, run_baselines, span_bars

    data = market.arrays()
    base = (trained.config if trained is not None else TrainConfig()).on_market(market)
    config = options.env_config(base.env)
    lo, hi = span_bars(data, config, options.start, options.end, options.last_days)
    wf_table = None
    if walk_forward:
        from backtest.metrics import compute_metrics
        from backtest.walk_forward import WalkForwardConfig, run_walk_forward, window_table

        wf = WalkForwardConfig(
            train_bars=train_bars, test_bars=test_bars, purge_bars=purge_bars,
            embargo_bars=embargo_bars, anchored=anchored, max_windows=windows,
            train_steps=train_steps,
        )
        wins, results, result = run_walk_forward(
            base, data, config, (lo, hi), wf, output_dir / "training",
            on_window=lambda w, r: console.print(
                f"window {w.index}: test return {r.returns.add(1).prod() - 1:+.2%}"
            ),
        )
        metrics = [compute_metrics(r) for r in results]
        wf_table = window_table(wins, results, data.timestamps, metrics)
        lo, hi = wins[0].test[0], wins[-1].test[1]
    else:
        result = run_baselines(data, config, lo, hi, (policy,))[policy]
    others = run_baselines(data, config, lo, hi, tuple(b for b in options.baselines if b != policy))
    _finish(analyse(result, data, others, options, output_dir, wf_table, config))


def _finish(run) -> None:
    """The one-screen summary of a finished backtest."""
    result = run.result
    console.print(_summary(run, f"backtest {result.steps.index[0]} .. {result.steps.index[-1]}"))
    if result.ended_early:
        console.print(f"[red]the run ended early: {result.ended_early}[/]")
    console.print(f"report: {run.report}")


def analyze_bias_command(
    model_path: Annotated[Path, typer.Option(help="Run folder or checkpoint.")],
    data_path: Annotated[
        Path | None, typer.Option(help="Market store; default: the run's data.")
    ] = None,
    exchange: Annotated[str | None, typer.Option(help=EXCHANGE_HELP)] = None,
    symbols: Annotated[str | None, typer.Option(help=SYMBOLS_HELP)] = None,
    num_samples: Annotated[int, typer.Option(help="Held-out states to sample.")] = 1000,
    output_dir: Annotated[Path, typer.Option(help="Folder for CSVs, charts, JSON.")] = Path(
        "results/bias"
    ),
    start: Annotated[str | None, typer.Option(help="Held-out span start (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Held-out span end (UTC).")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    synthetic_seed: Annotated[int | None, typer.Option(help="A fresh synthetic market.")] = None,
    allow_in_sample: Annotated[bool, typer.Option(help=IN_SAMPLE_HELP)] = False,
) -> None:
    """Per-asset action distributions and directional bias of a policy on held-out states."""
    with user_errors():  # bad paths, stores, spans, spaces: one line, exit code 2
        _analyze_bias(**locals())


def _analyze_bias(
    model_path, data_path, exchange, symbols, num_samples, output_dir, start, end, seed,
    synthetic_seed, allow_in_sample,
) -> None:
    from backtest.bias import analyze_bias, sample_states
    from backtest.bias_plots import write_bias_outputs
    from backtest.run import BacktestOptions, model_span
    from rl.evaluate import module_policy

    trained = TrainedRun.open(model_path)
    market = evaluation_market(trained, data_path, synthetic_seed, None, symbols, exchange)
    data = market.arrays()
    config = trained.env
    trained.check_spaces(data, config)
    span = BacktestOptions(start=start, end=end)
    lo, hi, sample = model_span(trained, market, data, config, span, allow_in_sample)
    console.print(f"sample: {sample.note}", soft_wrap=True)
    env_config = trained.config.on_market(market).env_config
    last_start = max(lo, hi - config.bars_per_step * 40)
    states = sample_states(env_config, num_samples, seed, start_range=(lo, last_start))
    report = analyze_bias(
        module_policy(trained.module, False), states, data.assets,
        deterministic_policy=module_policy(trained.module, True), execution=config.execution,
    )
    paths = write_bias_outputs(report, output_dir)
    table = Table(title=f"action bias over {num_samples} held-out states")
    for column in ("asset", "short", "flat", "long", "verdict"):
        table.add_column(column)
    for row in report.per_asset:
        table.add_row(row.asset, f"{row.short_fraction:.0%}", f"{row.flat_fraction:.0%}",
                      f"{row.long_fraction:.0%}", row.flag)
    console.print(table)
    console.print(f"outputs: {output_dir} ({len(paths)} files)")
