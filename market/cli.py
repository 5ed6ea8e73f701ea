"""`quantum data ...`: generate, collect, inspect and maintain the market store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from market import _cli_common as ui
from market.loader import load_aligned
from market.schema import Kind, perp_symbol, timeframe_ms
from market.store import ParquetStore, SeriesKey
from market.summary import correlation_matrix, market_summary
from market.validate import DataValidationError

app = typer.Typer(help="Market data: synthetic market, ccxt collection, parquet store.")
console = ui.console
log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"
DataDir = Annotated[
    Path, typer.Option("--data", "--out", help="Root directory of the parquet store.")
]


@app.command()
def synth(
    out: DataDir = Path("data"),
    config: Annotated[
        Path | None, typer.Option(help="SyntheticConfig YAML (e.g. from `calibrate`).")
    ] = None,
    assets: Annotated[
        str | None, typer.Option(help="Comma-separated assets [BTC,ETH,SOL].")
    ] = None,
    timeframe: Annotated[str | None, typer.Option(help="Bar timeframe (1m, 5m, 1h) [1m].")] = None,
    days: Annotated[float | None, typer.Option(help="Length of the span in days [365].")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; same seed, same data [7].")] = None,
    start: Annotated[
        str | None, typer.Option(help="UTC start of the first bar [2024-01-01].")
    ] = None,
) -> None:
    """Generate the synthetic perpetual-futures market and store it (exchange 'synthetic').

    Parameters come from --config (else the calibrated defaults); the other options
    override it. Defaults in [brackets] apply when neither sets them.
    """
    from market.calibrate import read_yaml
    from market.synthetic import SyntheticConfig, generate_market

    given = {"timeframe": timeframe, "days": days, "seed": seed, "start": start,
             "assets": None if assets is None else tuple(ui.split(assets))}
    try:
        base = SyntheticConfig() if config is None else read_yaml(config)
        settings = base.model_dump() | {k: v for k, v in given.items() if v is not None}
        chosen = SyntheticConfig.model_validate(settings)
    except ValueError as exc:
        raise ui.fail(ui.one_line(exc)) from exc
    store = ParquetStore(out)
    with ui.progress_bar() as progress:
        task = progress.add_task("generating market", total=1 + 3 * len(chosen.assets))
        market = generate_market(chosen)
        progress.advance(task)
        source = f"synthetic seed={chosen.seed} days={chosen.days} start={chosen.start}"
        for asset in chosen.assets:
            symbol = perp_symbol(asset)
            for kind, frames in ((Kind.OHLCV, market.ohlcv), (Kind.MARK, market.mark)):
                progress.update(task, description=f"writing {kind.value} {symbol}")
                key = SeriesKey.bars(SYNTHETIC, symbol, chosen.timeframe, kind)
                store.replace(key, frames[symbol], source)
                progress.advance(task)
            store.replace(SeriesKey.funding(SYNTHETIC, symbol), market.funding[symbol], source)
            progress.advance(task)
    shares = market.regimes.value_counts(normalize=True)
    regime_text = ", ".join(f"{name} {100 * share:.0f}%" for name, share in shares.items())
    console.print(f"Wrote {len(chosen.assets)} assets to {out} (regimes: {regime_text})")


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
    tiers: Annotated[bool, typer.Option(
        "--tiers/--no-tiers", help="Also record each symbol's leverage tiers (market.tiers) "
        "where the exchange serves them.")] = True,
) -> None:
    """See _COLLECT_HELP."""
    from market.collector import CollectConfig, SeriesProgress
    from market.collector import collect as run_collect
    from market.exchanges import CollectorError, make_exchange

    try:
        config = CollectConfig(
            exchange=exchange, symbols=tuple(ui.split(symbols)), since=since, until=until,
            timeframe=timeframe, kinds=tuple(Kind(k) for k in ui.split(kinds)),
            max_retries=max_retries,
        )
        client = make_exchange(exchange, credentials=False)  # public data needs no keys
    except ValueError as exc:
        raise ui.fail(str(exc)) from exc
    tasks: dict[SeriesKey, object] = {}
    with ui.progress_bar() as progress:

        def show(event: SeriesProgress) -> None:
            if event.key not in tasks:
                tasks[event.key] = progress.add_task(str(event.key), total=1000)
            progress.update(tasks[event.key], completed=int(1000 * event.fraction))

        try:
            report = run_collect(client, ParquetStore(out), config, progress=show)
        except CollectorError as exc:
            message = f"{exc} (everything fetched before the error is stored; rerun to resume)"
            raise ui.fail(message) from exc
    table = Table(title=f"collected from {exchange} into {out}")
    for col in ("series", "rows written", "pages", "retries", "stored until"):
        table.add_column(col)
    for item in report.series:
        table.add_row(str(item.key), f"{item.rows_written:,}", str(item.pages), str(item.retries),
                      str(item.stored_until))
    console.print(table)
    for key, why in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {key}: {why}")
    if tiers:
        _record_tiers(out, exchange, list(config.symbols), required=False)


def _record_tiers(out: Path, exchange: str, symbols: list[str], required: bool) -> None:
    """Fetch and record leverage tiers; a failure is an error when asked for by itself
    (`quantum data tiers`), a warning after a collection."""
    from market.exchanges import make_exchange
    from market.tiers import TiersError, record_tiers

    try:
        path = record_tiers(out, make_exchange(exchange), symbols)
    except (TiersError, ValueError) as exc:
        if required:
            raise ui.fail(str(exc), code=2) from exc
        console.print(f"[yellow]leverage tiers not recorded[/yellow]: {exc} (runs on this "
                      "store use the published or default margin tables)")
        return
    console.print(f"recorded leverage tiers of {', '.join(symbols)} in {path}")


@app.command("tiers")
def tiers_command(
    exchange: Annotated[str, typer.Option(help="ccxt exchange id: bybit (public), "
                                          "binanceusdm (needs API keys).")],
    symbols: Annotated[str, typer.Option(help="Comma-separated ccxt symbols.")],
    out: DataDir = Path("data"),
) -> None:
    """Record each symbol's maintenance-margin tiers (ccxt fetch_leverage_tiers) in the
    store; runs trained on it are margined and liquidated with them."""
    from market.tiers import read_tiers

    _record_tiers(out, exchange, ui.split(symbols), required=True)
    table = Table(title=f"leverage tiers of {exchange}")
    for col in ("symbol", "tiers", "first rate", "last tier from", "last rate", "max leverage"):
        table.add_column(col)
    for symbol, entry in read_tiers(out, exchange).items():
        (_, first), (floor, last) = entry["brackets"][0], entry["brackets"][-1]
        table.add_row(symbol, str(len(entry["brackets"])), f"{first:.4%}", f"{floor:,.0f}",
                      f"{last:.4%}", f"{entry['max_leverage'][0]:g}x")
    console.print(table)


_IMPORT_HELP = (
    "Import bars, mark-price bars or funding from a parquet/CSV file (or a folder of "
    "<BASE><QUOTE>_<ohlcv|mark|funding> files) into the store, validated.\n\n"
    "Timestamps are never guessed: --label says whether a bar is stamped with its open or "
    "close time (close is shifted back one timeframe), --time-unit how they are written. "
    "Re-importing appends only rows after the stored end (idempotent); --replace makes the "
    "file the whole series. A bad file is refused whole (exit code 2), nothing written."
)


@app.command("import", help=_IMPORT_HELP)
def import_data(
    path: Annotated[Path, typer.Argument(help="A .parquet/.csv file, or a folder of them.")],
    exchange: Annotated[str, typer.Option(help="Exchange name to store under, e.g. binanceusdm.")],
    time_unit: Annotated[str, typer.Option(help="Timestamps as: s, ms, ns, iso, datetime.")],
    data: DataDir = Path("data"),
    kind: Annotated[str | None, typer.Option(help="ohlcv, mark or funding (file only).")] = None,
    symbol: Annotated[str | None, typer.Option(help="ccxt symbol, e.g. BTC/USDT:USDT.")] = None,
    timeframe: Annotated[str, typer.Option(help="Bar timeframe (funding has none).")] = "1m",
    label: Annotated[str | None, typer.Option(help="Bar stamps mark the open|close.")] = None,
    column: Annotated[
        list[str] | None, typer.Option(help="Rename, store=file, e.g. close=Close (repeat).")
    ] = None,
    mark_timeframe: Annotated[
        str | None, typer.Option(help="Folder only: timeframe of the mark files (e.g. 8h).")
    ] = None,
    replace: Annotated[bool, typer.Option(help="Replace the series instead of appending.")] = False,
) -> None:
    """See _IMPORT_HELP."""
    from market import importer as imp

    try:
        renames = tuple(ui.pair(c) for c in column or ())
        common = {"exchange": exchange, "time_unit": time_unit, "columns": renames,
                  "replace": replace}
        if path.is_dir():
            if kind or symbol:
                raise ValueError("--kind/--symbol are for one file; a folder names them per file")
            folder = imp.FolderImportConfig(
                timeframe=timeframe, mark_timeframe=mark_timeframe, label=label, **common
            )
            report = imp.import_folder(ParquetStore(data), path, folder)
            results, skipped = report.results, report.skipped
        else:
            if kind is None or symbol is None:
                raise ValueError("a single file needs --kind and --symbol")
            bars = kind != Kind.FUNDING.value
            config = imp.ImportConfig(
                kind=kind, symbol=symbol, timeframe=timeframe if bars else None, label=label,
                **common,
            )
            results, skipped = (imp.import_file(ParquetStore(data), path, config),), ()
    except (ValueError, OSError) as exc:  # DataValidationError is a ValueError
        raise ui.fail(ui.one_line(exc), code=2) from exc
    ui.show_import(results, skipped, data)


_CALIBRATE_HELP = (
    "Fit the synthetic market to stored 1m data and write its SyntheticConfig as YAML.\n\n"
    "Per asset: price level, volatility, turnover, bid-ask bounce; correlations; volatility "
    "clustering; daily/weekend cycles; volume; funding level, spread and persistence. "
    "Use the file with `quantum data synth --config`."
)


@app.command("calibrate", help=_CALIBRATE_HELP)
def calibrate_market(
    exchange: Annotated[str, typer.Option(help="Exchange of the stored series.")],
    data: Annotated[Path, typer.Option("--data", help="Root of the parquet store.")] = Path("data"),
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols; default all.")] = "",
    out: Annotated[Path, typer.Option("--out", help="YAML file to write.")] = Path(
        "synthetic.yaml"
    ),
) -> None:
    """See _CALIBRATE_HELP."""
    from market.calibrate import CalibrateConfig, calibrate, write_yaml

    store = ParquetStore(data)
    chosen = ui.split(symbols) or sorted(
        {k.symbol for k in store.series() if k.exchange == exchange and k.timeframe == "1m"}
    )
    try:
        if not chosen:
            raise ValueError(f"no {exchange} 1m bars under {data}; import them first")
        config = CalibrateConfig(exchange=exchange, symbols=tuple(chosen))
        with console.status("measuring and fitting"):
            result = calibrate(store, config)
        write_yaml(result, out, f"{exchange} {', '.join(chosen)} under {data}")
    except (ValueError, OSError) as exc:
        raise ui.fail(ui.one_line(exc), code=2) from exc
    ui.show_calibration(result)
    console.print(f"Wrote {out}")


@app.command()
def summary(
    data: DataDir = Path("data"),
    exchange: Annotated[str, typer.Option(help="Exchange whose series to summarise.")] = SYNTHETIC,
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols; default all.")] = "",
    timeframe: Annotated[str, typer.Option(help="Bar timeframe.")] = "1m",
) -> None:
    """Print per-asset statistics and return correlations of stored data."""
    store = ParquetStore(data)
    chosen = ui.split(symbols) or sorted(
        {k.symbol for k in store.series() if k.exchange == exchange and k.timeframe == timeframe}
    )
    if not chosen:
        raise ui.fail(f"no {exchange} {timeframe} series under {data}")
    try:
        aligned = load_aligned(store, exchange, chosen, timeframe)
    except (DataValidationError, ValueError) as exc:
        raise ui.fail(str(exc)) from exc
    stats = market_summary(aligned, timeframe)
    first, last = aligned.index[0], aligned.index[-1]
    table = Table(title=f"{exchange} {timeframe}: {len(aligned):,} bars, {first} .. {last}")
    table.add_column("")
    for asset in stats.index:
        table.add_column(str(asset), justify="right")
    for metric in stats.columns:
        table.add_row(metric, *(ui.fmt(v) for v in stats[metric]))
    console.print(table)
    corr = correlation_matrix(aligned)
    ctable = Table(title="correlation of bar log returns")
    ctable.add_column("")
    for col in corr.columns:
        ctable.add_column(str(col), justify="right")
    for asset, row in corr.iterrows():
        ctable.add_row(str(asset), *(f"{v:.2f}" for v in row))
    console.print(ctable)


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
