"""`quantum live`: run, inspect and stop paper-trading sessions.

    quantum live start --replay --model-path RUN [--data-path STORE] [--start T --end T]
    quantum live start --model-path RUN --data-path STORE --exchange binanceusdm
    quantum live status --session-dir DIR [--json]
    quantum live stop --session-dir DIR

A session folder holds everything (live.journal); starting a folder that has a session
resumes it where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console

from rl.cli_input import user_errors

app = typer.Typer(help="Paper trading on the env's execution model.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("start")
def start_command(
    session_dir: Annotated[Path, typer.Option(help="Session folder (created or resumed).")],
    model_path: Annotated[Path | None, typer.Option(help="Run folder or checkpoint.")] = None,
    replay: Annotated[
        bool, typer.Option(help="Replay stored bars as if they arrived live (paper on history); "
                           "without it, live bars from --exchange.")
    ] = False,
    data_path: Annotated[Path | None, typer.Option(help="Market store.")] = None,
    symbols: Annotated[str | None, typer.Option(help="Symbols of the store to trade.")] = None,
    exchange: Annotated[str | None, typer.Option(help="Exchange in the store.")] = None,
    synthetic_seed: Annotated[int | None, typer.Option(help="A fresh synthetic market.")] = None,
    synthetic_days: Annotated[float | None, typer.Option(help="Days of that market.")] = None,
    start: Annotated[str | None, typer.Option(help="First decision time (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Last bar time (UTC).")] = None,
    last_days: Annotated[float | None, typer.Option(help="Only the last N days.")] = None,
    initial_capital: Annotated[float | None, typer.Option(help="Starting USDC.")] = None,
    max_drawdown: Annotated[float, typer.Option(help="Kill switch: drawdown from peak.")] = 0.2,
    daily_loss: Annotated[float, typer.Option(help="Kill switch: loss since 00:00 UTC.")] = 0.1,
    max_psi: Annotated[
        float | None, typer.Option(help="Kill switch: feature drift (PSI) vs training data.")
    ] = None,
    psi_bars: Annotated[int, typer.Option(help="Recent bars the drift test reads.")] = 1440,
    stale_bars: Annotated[
        float, typer.Option(help="Kill switch: no closed bar for this many bar lengths.")
    ] = 3.0,
    history_days: Annotated[
        float, typer.Option(help="Live: days of bars before now the features start from.")
    ] = 3.0,
    poll_s: Annotated[float, typer.Option(help="Live: seconds between exchange polls.")] = 5.0,
    serve_url: Annotated[
        str | None, typer.Option(help="Decide through a running `quantum serve` (key in "
                                 "$QUANTUM_API_KEY) instead of in process.")
    ] = None,
    alert_webhook: Annotated[
        str | None, typer.Option(help="POST every alert here as JSON.")
    ] = None,
    allow_in_sample: Annotated[
        bool, typer.Option(help="Allow a span that overlaps the run's training data.")
    ] = False,
    wandb: Annotated[
        bool, typer.Option(help="Log equity, P&L, drift and alerts to W&B (offline unless a "
                           "key is configured).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Final status as JSON.")] = False,
    mode: Annotated[str, typer.Option(
        help="paper: fills on the simulator; testnet: orders on the exchange's test network "
        "(ccxt sandbox); live: orders with real money. Keys: QUANTUM_<EXCHANGE>_API_KEY and "
        "_SECRET in the environment or .env.")] = "paper",
    real_money: Annotated[bool, typer.Option(
        "--i-understand-this-trades-real-money",
        help="Required by --mode live, at every start.")] = False,
) -> None:
    """Start (or resume) a trading session (paper by default); a progress line per bar."""
    from backtest.run import BacktestOptions
    from live.run import replay_session

    with user_errors():
        from live.venue import CONSENT_FLAG, TradingMode

        if replay and TradingMode(mode) is not TradingMode.PAPER:
            raise ValueError("a replay fills on the simulator: --replay takes --mode paper")
        if TradingMode(mode) is TradingMode.LIVE and not real_money:
            raise ValueError(f"--mode live places orders with real money: add {CONSENT_FLAG} "
                             "to confirm, or use --mode testnet")
    if not replay:
        with user_errors():
            live = _live(session_dir, model_path, data_path, exchange, symbols, history_days,
                         initial_capital, kill_switch(max_drawdown, daily_loss, max_psi, psi_bars,
                                                      stale_bars),
                         serve_url, alert_webhook, poll_s, mode, real_money)
        _finish(live.session, live.run, session_dir, wandb, as_json)
        return
    with user_errors():
        market = None
        if model_path is not None:
            from backtest.cli import evaluation_market
            from rl.checkpoint import TrainedRun

            market = evaluation_market(TrainedRun.open(model_path), data_path, synthetic_seed,
                                       synthetic_days, symbols, exchange)
        options = BacktestOptions(start=start, end=end, last_days=last_days,
                                  initial_capital=initial_capital)
        kill = kill_switch(max_drawdown, daily_loss, max_psi, psi_bars, stale_bars)
        replayed = replay_session(session_dir, model_path, market, options, kill, serve_url,
                                  alert_webhook, allow_in_sample)
    _finish(replayed.session, replayed.run, session_dir, wandb, as_json)


def kill_switch(max_drawdown, daily_loss, max_psi, psi_bars, stale_bars):
    from live.monitors import KillSwitch

    return KillSwitch(max_drawdown=max_drawdown, daily_loss=daily_loss, max_psi=max_psi,
                      psi_bars=psi_bars, stale_bars=stale_bars)


def _live(session_dir, model_path, data_path, exchange, symbols, history_days, initial_capital,
          kill, serve_url, alert_webhook, poll_s, mode="paper", consent=False):
    """A live paper session: the model's assets on ``exchange``'s perpetuals, the store kept
    current under ``data_path``, features from ``history_days`` back."""
    from envs.market_spec import MarketSpec
    from live.journal import read_state
    from live.run import live_session
    from market.schema import asset_of
    from rl.checkpoint import TrainedRun

    market = None
    if read_state(session_dir) is None:
        if model_path is None or data_path is None:
            raise ValueError("a new live session needs --model-path and --data-path (the store "
                             "the feed keeps current)")
        trained = TrainedRun.open(model_path)
        venue = exchange or (trained.market.exchange if trained.market.stored else None)
        if venue is None or venue == "synthetic":
            raise ValueError("give --exchange, the ccxt id of the perpetuals to trade "
                             "(e.g. binanceusdm)")
        chosen = [s.strip() for s in (symbols or "").split(",") if s.strip()]
        chosen = chosen or [f"{asset_of(a)}/USDT:USDT" for a in trained.assets()]
        start = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=history_days)
        market = MarketSpec(data_dir=str(data_path), exchange=venue, symbols=tuple(chosen),
                            timeframe=trained.market.bar_timeframe, start=start.isoformat())
    return live_session(session_dir, model_path, market, kill, serve_url, alert_webhook,
                        initial_capital, poll_s=poll_s, mode=mode, consent=consent)


def _finish(session, run, session_dir: Path, wandb: bool, as_json: bool) -> None:
    """Run the session with progress lines (and W&B), then show its final status."""
    from live.session import status_of

    with user_errors():
        tracker = _tracker(session_dir, session) if wandb else None
        session.on_bar = lambda status: _progress(status, tracker)
        try:
            state = run()
        finally:
            if tracker is not None:
                tracker.finish()
    status = status_of(state)
    if as_json:
        typer.echo(json.dumps(status))
    else:
        _show(status)
    lat = session.latencies
    if lat:
        console.print(f"bar close -> decision: p50 {_q(lat, 50):.1f} ms, p99 {_q(lat, 99):.1f} ms "
                      f"over {len(lat)} decisions")


@app.command("status")
def status_command(
    session_dir: Annotated[Path, typer.Option(help="Session folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """Positions, equity, P&L today, last bar and signal, drift, kill-switch state."""
    from live.journal import read_state
    from live.session import status_of

    with user_errors():
        state = read_state(session_dir)
        if state is None:
            raise FileNotFoundError(f"{session_dir}: no session here")
    status = status_of(state)
    if as_json:
        typer.echo(json.dumps(status))
    else:
        _show(status)


@app.command("fills")
def fills_command(
    session_dir: Annotated[Path, typer.Option(help="Session folder (testnet or live).")],
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """The exchange's fills against the simulator's: price difference (bps) beside the
    cost model's spread-and-impact estimate, and fees, per asset."""
    from rich.table import Table

    from live.executor import fill_report
    from live.journal import Journal, read_state

    with user_errors():
        if read_state(session_dir) is None:
            raise FileNotFoundError(f"{session_dir}: no session here")
    report = fill_report(Journal(session_dir).rows("fills.jsonl"))
    if as_json:
        typer.echo(json.dumps(report))
        return
    table = Table(title=f"fills of {session_dir}: exchange vs simulator")
    for col in ("asset", "fills", "paired", "slippage (bps)", "model cost (bps)",
                "exchange fees", "model fees"):
        table.add_column(col)
    fmt = lambda v: "n/a" if v is None else f"{v:,.2f}"  # noqa: E731
    for asset, row in report.items():
        table.add_row(asset, str(row["fills"]), str(row["paired_with_model"]),
                      fmt(row["slippage_bps"]), fmt(row["model_cost_bps"]),
                      fmt(row["exchange_fees"]), fmt(row["model_fees"]))
    console.print(table)


@app.command("stop")
def stop_command(
    session_dir: Annotated[Path, typer.Option(help="Session folder.")],
) -> None:
    """Ask the session's loop to stop after the bar it is on (it keeps its book)."""
    from live.journal import Journal, read_state

    with user_errors():
        if read_state(session_dir) is None:
            raise FileNotFoundError(f"{session_dir}: no session here")
        Journal(session_dir).request_stop()
    console.print(f"stop requested: {session_dir}")


@app.command("flatten")
def flatten_command(
    session_dir: Annotated[Path, typer.Option(help="Session folder.")],
) -> None:
    """Trip the session's kill switch at its next bar: flatten the book with the normal
    execution model, then stop trading (the reason, manual_flatten, is kept)."""
    from live.journal import Journal, read_state

    with user_errors():
        if read_state(session_dir) is None:
            raise FileNotFoundError(f"{session_dir}: no session here")
        Journal(session_dir).request_flatten()
    console.print(f"flatten requested: {session_dir}")


def _tracker(session_dir: Path, session):
    """The session's W&B run (rl.tracking: offline unless a key is configured); alerts are
    logged to it as they are sent."""
    from rl.tracking import Tracker

    Path(session_dir).mkdir(parents=True, exist_ok=True)
    tracker = Tracker(Path(session_dir), "quantum-live",
                      session.settings.model_dump(mode="json"), tags=("paper",))
    session.alerts.sinks.append(
        lambda alert: tracker.summary({f"alert/{alert['kind']}": alert["message"]})
    )
    return tracker


def _progress(status: dict, tracker) -> None:
    if tracker is not None:
        metrics = {k: status[k] for k in ("equity", "pnl_today", "drawdown", "fees", "funding")}
        metrics["gross_positions"] = float(len(status["positions"]))
        metrics["kill_switch"] = float(status["kill_switch"] is not None)
        if status["drift_psi_max"] is not None:
            metrics["drift_psi_max"] = status["drift_psi_max"]
        tracker.log(metrics, step=status["bars"])
    kill = status["kill_switch"]
    positions = ", ".join(f"{a} {q:+.4g}" for a, q in status["positions"].items()) or "flat"
    console.print(f"{status['last_bar']} {status['status']} equity {status['equity']:,.2f} "
                  f"today {status['pnl_today']:+,.2f} [{positions}]"
                  + (f" KILL {kill['rule']}" if kill else ""), soft_wrap=True, highlight=False)


def _show(status: dict) -> None:
    for key, value in status.items():
        if key != "last_signal":
            console.print(f"{key:>15}: {value}", soft_wrap=True)


def _q(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q) * 1e3)
