"""`quantum data ...`: generate, collect, inspect and maintain the market store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from market.loader import load_aligned
from market.schema import Kind, perp_symbol, timeframe_ms
from market.store import ParquetStore, SeriesKey
from market.summary import correlation_matrix, market_summary
from market.validate import DataValidationError

app = typer.Typer(help="Market data: synthetic market, ccxt collection, parquet store.")
console = Console()
log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"
DataDir = Annotated[
    Path, typer.Option("--data", "--out", help="Root directory of the parquet store.")
]


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


@app.command()
def synth(
    out: DataDir = Path("data"),
    assets: Annotated[str, typer.Option(help="Comma-separated asset names.")] = "BTC,ETH,SOL",
    timeframe: Annotated[str, typer.Option(help="Bar timeframe (1m, 5m, 1h, ...).")] = "1m",
    days: Annotated[float, typer.Option(help="Length of the generated span in days.")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives identical data.")] = 7,
    start: Annotated[str, typer.Option(help="UTC start of the first bar.")] = "2024-01-01",
) -> None:
    """Generate the synthetic perpetual-futures market and store it (exchange 'synthetic')."""
    from market.synthetic import SyntheticConfig, generate_market

    try:
        config = SyntheticConfig(
            assets=tuple(_split(assets)), timeframe=timeframe, days=days, seed=seed, start=start
        )
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    store = ParquetStore(out)
    with _progress() as progress:
        task = progress.add_task("generating market", total=1 + 3 * len(config.assets))
        market = generate_market(config)
        progress.advance(task)
        source = f"synthetic seed={seed} days={days} start={start}"
        for asset in config.assets:
            symbol = perp_symbol(asset)
            for kind, frames in ((Kind.OHLCV, market.ohlcv), (Kind.MARK, market.mark)):
                progress.update(task, description=f"writing {kind.value} {symbol}")
                store.replace(
                    SeriesKey.bars(SYNTHETIC, symbol, timeframe, kind), frames[symbol], source
                )
                progress.advance(task)
            store.replace(SeriesKey.funding(SYNTHETIC, symbol), market.funding[symbol], source)
            progress.advance(task)
    shares = market.regimes.value_counts(normalize=True)
    regime_text = ", ".join(f"{name} {100 * share:.0f}%" for name, share in shares.items())
    console.print(f"Wrote {len(config.assets)} assets to {out} (regimes: {regime_text})")


_COLLECT_HELP = (
    "Fetch OHLCV, mark prices and funding history through ccxt (incremental, resumable).\n\n"
    "Running it again fetches only what is missing; an interrupted run loses nothing already "
    "written. API keys (only for private endpoints) come from QUANTUM_<EXCHANGE>_API_KEY, "
    "_SECRET and _PASSWORD or a .env file."
)


@app.command(help=_COLLECT_HELP)
def collect(
    exchange: Annotated[str, typer.Option(help="ccxt exchange id: binanceusdm, bybit, okx, ...")],
    symbols: Annotated[str, typer.Option(help="Comma-separated ccxt symbols, e.g. BTC/USDT:USDT.")],
    since: Annotated[str, typer.Option(help="UTC start (date or ISO time).")],
    out: DataDir = Path("data"),
    until: Annotated[str | None, typer.Option(help="UTC end, exclusive; default now.")] = None,
    timeframe: Annotated[str, typer.Option(help="Bar timeframe (1m, 5m, 1h, ...).")] = "1m",
    kinds: Annotated[str, typer.Option(help="Series kinds: ohlcv, mark, funding.")] = (
        "ohlcv,mark,funding"
    ),
    max_retries: Annotated[int, typer.Option(help="Retries per request on network errors.")] = 5,
) -> None:
    """See _COLLECT_HELP."""
    from market.collector import CollectConfig, SeriesProgress
    from market.collector import collect as run_collect
    from market.exchanges import CollectorError, make_exchange

    try:
        config = CollectConfig(
            exchange=exchange, symbols=tuple(_split(symbols)), since=since, until=until,
            timeframe=timeframe, kinds=tuple(Kind(k) for k in _split(kinds)),
            max_retries=max_retries,
        )  # fmt: skip
        client = make_exchange(exchange, credentials=False)  # public data needs no keys
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    tasks: dict[SeriesKey, object] = {}
    with _progress() as progress:

        def show(event: SeriesProgress) -> None:
            if event.key not in tasks:
                tasks[event.key] = progress.add_task(str(event.key), total=1000)
            progress.update(tasks[event.key], completed=int(1000 * event.fraction))

        try:
            report = run_collect(client, ParquetStore(out), config, progress=show)
        except CollectorError as exc:
            message = f"{exc} (everything fetched before the error is stored; rerun to resume)"
            raise _fail(message) from exc
    table = Table(title=f"collected from {exchange} into {out}")
    for col in ("series", "rows written", "pages", "retries", "stored until"):
        table.add_column(col)
    for item in report.series:
        table.add_row(str(item.key), f"{item.rows_written:,}", str(item.pages), str(item.retries),
                      str(item.stored_until))  # fmt: skip
    console.print(table)
    for key, why in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {key}: {why}")


@app.command()
def summary(
    data: DataDir = Path("data"),
    exchange: Annotated[str, typer.Option(help="Exchange whose series to summarise.")] = SYNTHETIC,
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols; default all.")] = "",
    timeframe: Annotated[str, typer.Option(help="Bar timeframe.")] = "1m",
) -> None:
    """Print per-asset statistics and return correlations of stored data."""
    store = ParquetStore(data)
    chosen = _split(symbols) or sorted(
        {k.symbol for k in store.series() if k.exchange == exchange and k.timeframe == timeframe}
    )
    if not chosen:
        raise _fail(f"no {exchange} {timeframe} series under {data}")
    try:
        aligned = load_aligned(store, exchange, chosen, timeframe)
    except (DataValidationError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    stats = market_summary(aligned, timeframe)
    first, last = aligned.index[0], aligned.index[-1]
    table = Table(title=f"{exchange} {timeframe}: {len(aligned):,} bars, {first} .. {last}")
    table.add_column("")
    for asset in stats.index:
        table.add_column(str(asset), justify="right")
    for metric in stats.columns:
        table.add_row(metric, *(_fmt(v) for v in stats[metric]))
    console.print(table)
    corr = correlation_matrix(aligned)
    ctable = Table(title="correlation of bar log returns")
    ctable.add_column("")
    for col in corr.columns:
        ctable.add_column(str(col), justify="right")
    for asset, row in corr.iterrows():
        ctable.add_row(str(asset), *(f"{v:.2f}" for v in row))
    console.print(ctable)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1e6 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


@app.command("list")
def list_series(data: DataDir = Path("data")) -> None:
    """List every stored series with its rows, span and file count."""
    store = ParquetStore(data)
    table = Table(title=f"series under {data}")
    for col in ("kind", "exchange", "symbol", "timeframe", "rows", "first", "last", "files"):
        table.add_column(col)
    for key in store.series():
        info = store.info(key)
        table.add_row(
            key.kind.value,
            key.exchange,
            key.symbol,
            key.timeframe or "-",
            f"{info.rows:,}",
            str(info.first),
            str(info.last),
            str(info.files),
        )
    console.print(table)


@app.command()
def validate(
    data: DataDir = Path("data"),
    max_gap_bars: Annotated[int, typer.Option(help="Longest gap the loader may fill.")] = 60,
) -> None:
    """Read and validate every stored series; report gaps. Exit code 1 on any problem."""
    store = ParquetStore(data)
    problems = 0
    keys = store.series()
    for key in keys:
        try:
            frame = store.read(key)
        except DataValidationError as exc:
            problems += 1
            console.print(f"[red]invalid[/red] {exc}")
            continue
        if key.timeframe is None or frame.empty:
            continue
        step = pd.Timedelta(milliseconds=timeframe_ms(key.timeframe))
        missing = (frame.index[-1] - frame.index[0]) // step + 1 - len(frame)
        if missing:
            console.print(f"[yellow]gaps[/yellow] {key}: {missing} missing bars")
    console.print(f"checked {len(keys)} series: {problems} invalid")
    if problems:
        raise typer.Exit(code=1)


@app.command()
def compact(data: DataDir = Path("data")) -> None:
    """Merge each series' files into one (safe to interrupt)."""
    store = ParquetStore(data)
    removed = sum(store.compact(key) for key in store.series())
    console.print(f"removed {removed} files")
