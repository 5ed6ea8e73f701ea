"""`quantum backtest` and `quantum analyze-bias`: a trained policy (or a rule) on the
simulator, with the seed's options, a report and a one-screen summary."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from backtest.guard import read_manifest
from backtest.run import BacktestOptions
from rl.cli_input import user_errors

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


def market_env_config(
    base: dict[str, Any], data_path: Path | None, synthetic_seed: int | None,
    synthetic_days: float | None, symbols: str | None = None, exchange: str | None = None,
    model_symbols: list[str] | None = None,
) -> dict[str, Any]:
    """The training env_config with the market swapped: a store folder (its exchange and
    symbols), or a fresh synthetic market (another seed: data the policy never saw). Only
    the data keys change (data_dir, exchange, symbols; synthetic_* go with a store).

    A store's exchange is ``exchange``, else the run's own on the run's own store, else
    the store's only one. Its symbols are ``symbols`` (names or ccxt symbols), else the
    model's (``model_symbols``, else the run's), else the defaults when stored (else every
    stored one). Errors (ValueError) say what the store holds."""
    # the training run's own data span (start/end, episode starts) says what it trained on,
    # not what a backtest reads: the backtest's --start/--end/--last-days choose that
    dropped = ("start_range", "start_fraction", "start", "end")
    keep = {k: v for k, v in base.items() if k not in dropped}
    chosen = [s.strip() for s in (symbols or "").split(",") if s.strip()]
    if data_path is not None:
        for key in ("synthetic_days", "synthetic_seed"):
            keep.pop(key, None)
        keep["data_dir"] = str(data_path)
        keep.pop("exchange", None)  # the run's venue says nothing about another store
    elif synthetic_seed is not None or synthetic_days is not None:
        keep.pop("data_dir", None)
        if synthetic_seed is not None:
            keep["synthetic_seed"] = synthetic_seed
        if synthetic_days is not None:
            keep["synthetic_days"] = synthetic_days
    if keep.get("data_dir") is None:
        if exchange is not None:
            raise ValueError(f"--exchange {exchange} names an exchange of a store: give the "
                             "store with --data-path")
        if chosen:
            keep["symbols"] = chosen
        return keep
    if data_path is None and exchange is None:
        exchange = keep.get("exchange", "synthetic")  # the registry's default venue
    return _store_market(keep, exchange, chosen, model_symbols or keep.get("symbols"))


def _store_market(
    env: dict[str, Any], exchange: str | None, chosen: list[str], trained: list[str] | None
) -> dict[str, Any]:
    from market.loader import MarketChoiceError, choose_exchange, choose_symbols
    from market.loader import symbols_of_assets as as_symbols
    from market.store import ParquetStore

    store = ParquetStore(env["data_dir"])
    venue = choose_exchange(store, exchange)
    timeframe = env.get("timeframe", "1m")
    stored = store.symbols(venue, timeframe)
    wanted = as_symbols(chosen or trained or [], stored) or None
    try:
        symbols = choose_symbols(store, venue, wanted, timeframe)
    except MarketChoiceError as err:
        if chosen or not wanted:
            raise
        raise MarketChoiceError(
            f"{err}; the model trades {len(wanted)} assets ({', '.join(wanted)}): pick "
            f"{len(wanted)} stored ones with --symbols"
        ) from err
    return {**env, "exchange": venue, "symbols": symbols}


def trained_symbols(trained) -> list[str] | None:
    """The assets a loaded policy was trained on: its run's symbols, else the assets its
    run's manifest recorded (a run on the in-memory synthetic market), else unknown."""
    if trained.config.env_config.get("symbols"):
        return list(trained.config.env_config["symbols"])
    for folder in (trained.checkpoint.parent.parent, trained.checkpoint.parent):
        manifest = folder / "manifest.json"
        if manifest.is_file():
            assets = json.loads(manifest.read_text()).get("data_assets")
            if assets:
                return list(assets)
    return None


def market_line(env_config: dict[str, Any]) -> str:
    """Which market a command reads, in one line."""
    if env_config.get("data_dir") is None:
        seed, days = env_config.get("synthetic_seed", 7), env_config.get("synthetic_days", 30.0)
        return f"synthetic market in memory (seed {seed}, {days:g} days)"
    symbols = ", ".join(env_config.get("symbols") or ())
    return f"{env_config.get('exchange')} {symbols} under {env_config['data_dir']}"


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
    commission, slippage, max_leverage, benchmark, start, end, last_days, baselines, stochastic,
    n_trials, synthetic_seed, synthetic_days, walk_forward, train_bars, test_bars, purge_bars,
    embargo_bars, anchored, windows, train_steps, allow_in_sample,
) -> None:
    from envs.config import EnvConfig
    from envs.registry import market_for
    from rl.config import TrainConfig

    options = BacktestOptions(
        initial_capital=initial_capital, risk_free_rate=risk_free_rate, commission=commission,
        slippage=slippage, max_leverage=max_leverage, benchmark=benchmark or None, start=start,
        end=end, last_days=last_days, baselines=tuple(b for b in baselines.split(",") if b),
        deterministic=not stochastic, n_trials=n_trials,
    )
    trained = None
    if model_path is not None:
        from backtest.loading import load_trained

        trained = load_trained(model_path)
    train_config = trained.config if trained is not None else TrainConfig()
    env_config = market_env_config(
        train_config.env_config, data_path, synthetic_seed, synthetic_days, symbols, exchange,
        trained_symbols(trained) if trained is not None else None,
    )
    console.print(f"market: {market_line(env_config)}", soft_wrap=True)
    data = market_for(env_config)
    config = options.env_config(EnvConfig(**env_config.get("env", {})))
    from backtest.run import analyse, model_span, run_baselines, run_module, span_bars

    sample = None
    if trained is not None and not walk_forward:
        manifest = read_manifest(model_path)
        lo, hi, sample = model_span(manifest, env_config, data, config, options, allow_in_sample)
        console.print(f"sample: {sample.note}", soft_wrap=True)
    else:
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
        base = train_config.model_copy(update={"env_config": env_config})
        wins, results, result = run_walk_forward(
            base, data, config, (lo, hi), wf, output_dir / "training",
            on_window=lambda w, r: console.print(
                f"window {w.index}: test return {r.returns.add(1).prod() - 1:+.2%}"
            ),
        )
        metrics = [compute_metrics(r) for r in results]
        wf_table = window_table(wins, results, data.timestamps, metrics)
        lo, hi = wins[0].test[0], wins[-1].test[1]
    elif trained is not None:
        _check_spaces(trained.module, data, config)
        result = run_module(
            trained.module, data, config, lo, hi, str(model_path), options.deterministic,
            meta={"checkpoint": str(trained.checkpoint)},
        )
    else:
        result = run_baselines(data, config, lo, hi, (policy,))[policy]
    others = run_baselines(data, config, lo, hi, tuple(b for b in options.baselines if b != policy))
    run = analyse(result, data, others, options, output_dir, wf_table, config, sample)
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
    from backtest.loading import load_trained
    from backtest.run import BacktestOptions, model_span
    from envs.config import EnvConfig
    from envs.registry import market_for
    from rl.evaluate import module_policy

    trained = load_trained(model_path)
    env_config = market_env_config(
        trained.config.env_config, data_path, synthetic_seed, None, symbols, exchange,
        trained_symbols(trained),
    )
    console.print(f"market: {market_line(env_config)}", soft_wrap=True)
    data = market_for(env_config)
    config = EnvConfig(**env_config.get("env", {}))
    _check_spaces(trained.module, data, config)
    span = BacktestOptions(start=start, end=end)
    lo, hi, sample = model_span(
        read_manifest(model_path), env_config, data, config, span, allow_in_sample
    )
    console.print(f"sample: {sample.note}", soft_wrap=True)
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
