"""`quantum news ...`: collect headlines from feeds and CryptoPanic, and show the latest;
`quantum news sources ...`: import, fetch and show the market-wide feature sources.

Output goes through a Console made per command, which reads the terminal width (and
``COLUMNS``) when the command runs.

``build_app`` takes the HTTP session factory, the clock and the token source, so tests
run the real commands against recorded documents; ``app`` is the production wiring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import pandas as pd
import requests
import typer
from rich.console import Console
from rich.table import Table

from news.collect import CollectResult, SourceResult, collect
from news.cryptopanic import DEFAULT_DOTENV, load_token, redact
from news.feeds import select_feeds
from news.sources import (
    SOURCES,
    FeatureSource,
    SourceFetchError,
    SourceStoreError,
    fetch_payload,
    get_source,
    read_observations,
    stored_sources,
    write_observations,
)
from news.store import NewsStore, NewsStoreError

log = logging.getLogger(__name__)

DataDir = Annotated[Path, typer.Option("--data", help="Root directory of the data store.")]
SourceName = Annotated[str, typer.Option("--source", help=f"One of {', '.join(SOURCES)}.")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """One unwrapped error line (copyable paths), then the exit code."""
    Console().print(f"[red]error:[/red] {redact(message)}", soft_wrap=True)
    return typer.Exit(code=code)


def build_app(
    session_factory: Callable[[], requests.Session] = requests.Session,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    env: Mapping[str, str] | None = None,
    dotenv_path: Path | None = DEFAULT_DOTENV,
) -> typer.Typer:
    """The `news` command group; ``env`` None reads the environment and ``dotenv_path``."""
    app = typer.Typer(help="News: collect headlines (RSS/Atom, CryptoPanic) into parquet.")

    @app.command("collect")
    def collect_command(
        data: DataDir = Path("data"),
        feeds: Annotated[str | None, typer.Option(
            help="Comma list of feed names or URLs (default: coindesk, cointelegraph, "
            "decrypt, theblock, bitcoinmagazine).")] = None,
        no_cryptopanic: Annotated[bool, typer.Option(
            "--no-cryptopanic", help="Leave CryptoPanic out even when a token is set.")] = False,
    ) -> None:
        """Fetch new headlines from the feeds and CryptoPanic into the store.

        Only what is new since the last run is asked for (conditional GETs; CryptoPanic
        pages down to the last id seen), and each item is stored once, so it is safe to
        rerun or interrupt. CryptoPanic needs QUANTUM_CRYPTOPANIC_TOKEN (environment or
        .env); without it that source is skipped."""
        try:
            chosen = select_feeds(feeds)
        except ValueError as exc:
            raise fail(str(exc)) from exc
        token = None if no_cryptopanic else load_token(env, dotenv_path)
        store = NewsStore(data)
        with session_factory() as session:
            try:
                result = collect(store, chosen, session, clock, token,
                                 use_cryptopanic=not no_cryptopanic)
            except NewsStoreError as exc:
                raise fail(str(exc)) from exc
        _show_result(Console(), result, data)
        if result.errors:
            names = ", ".join(s.source for s in result.errors)
            raise fail(f"{len(result.errors)} source(s) failed ({names}); the rest is stored, "
                       "rerun to retry them")

    @app.command("show")
    def show_command(
        data: DataDir = Path("data"),
        limit: Annotated[int, typer.Option("--limit", "-n", min=1,
                                           help="How many headlines.")] = 20,
        asset: Annotated[str | None, typer.Option(
            help="Only items mentioning this asset code (e.g. BTC).")] = None,
    ) -> None:
        """The latest headlines, newest first by when we first saw them."""
        try:
            frame = NewsStore(data).read()
        except NewsStoreError as exc:
            raise fail(str(exc)) from exc
        if asset:
            code = asset.strip().upper()
            frame = frame[[code in assets for assets in frame["assets"]]]
        console = Console()
        if frame.empty:
            console.print(f"no news stored under {data}" + (f" for {asset}" if asset else ""))
            return
        latest = frame.tail(limit).iloc[::-1]
        table = Table(title=f"latest {len(latest)} of {len(frame):,} headlines in {data}")
        table.add_column("first seen (UTC)", no_wrap=True)
        table.add_column("source", overflow="fold")
        table.add_column("assets")
        table.add_column("title", overflow="fold", ratio=1, min_width=30)
        for row in latest.itertuples():
            table.add_row(f"{row.first_seen:%Y-%m-%d %H:%M}", row.source,
                          ",".join(row.assets) or "-", row.title)
        console.print(table)

    app.add_typer(_sources_app(session_factory), name="sources", no_args_is_help=True)
    return app


def _sources_app(session_factory: Callable[[], requests.Session]) -> typer.Typer:
    """The `news sources` group: market-wide series stored under DATA/sources."""
    app = typer.Typer(help="Market-wide feature sources (Fear & Greed, on-chain): import a "
                      "saved API response, fetch it, show what is stored.")

    @app.command("import")
    def import_command(
        source: SourceName,
        file: Annotated[Path, typer.Option("--file", help="A saved API response (JSON).")],
        data: DataDir = Path("data"),
    ) -> None:
        """Parse a saved API response into the store (merged; a bad file stores nothing)."""
        chosen = _chosen_source(source)
        try:
            payload = file.read_bytes()
        except OSError as exc:
            raise fail(f"cannot read {file} ({exc.strerror or exc})") from exc
        _store_payload(chosen, payload, data, str(file))

    @app.command("fetch")
    def fetch_command(
        source: SourceName,
        data: DataDir = Path("data"),
        url: Annotated[str | None, typer.Option(
            help="Read this address instead of the source's API (a mirror, a test "
            "server).")] = None,
    ) -> None:
        """Fetch the source's API over HTTP and merge the response into the store."""
        chosen = _chosen_source(source)
        with session_factory() as session:
            try:
                payload = fetch_payload(chosen, session, url)
            except SourceFetchError as exc:
                raise fail(str(exc)) from exc
        _store_payload(chosen, payload, data, url or chosen.url)

    @app.command("show")
    def show_command(
        data: DataDir = Path("data"),
        source: Annotated[str | None, typer.Option(
            help="Only this source, with its latest observations.")] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1,
                                           help="Latest observations listed with --source.")] = 10,
    ) -> None:
        """What each source holds: count, time range, latest value and when it is visible."""
        names = [source] if source else stored_sources(data)
        console = Console()
        if not names:
            console.print(f"no source observations stored under {data}")
            return
        try:
            frames = {name: read_observations(data, name) for name in names}
        except (SourceStoreError, ValueError) as exc:
            raise fail(str(exc)) from exc
        table = Table(title=f"feature sources in {data}")
        for column in ("source", "observations", "first", "last", "latest", "visible from"):
            table.add_column(column, justify="right" if column == "observations" else "left")
        for name, frame in frames.items():
            newest = frame.iloc[-1]
            table.add_row(name, f"{len(frame):,}", f"{frame['time'].iloc[0]:%Y-%m-%d}",
                          f"{newest['time']:%Y-%m-%d}", _values(newest),
                          f"{newest['first_seen']:%Y-%m-%d %H:%M}")
        console.print(table)
        if source:
            frame = frames[source]
            latest = Table(title=f"latest {min(limit, len(frame))} of {source}")
            for column in ("time (UTC)", "visible from (UTC)", "value"):
                latest.add_column(column)
            for _, row in frame.tail(limit).iloc[::-1].iterrows():
                latest.add_row(f"{row['time']:%Y-%m-%d %H:%M}",
                               f"{row['first_seen']:%Y-%m-%d %H:%M}", _values(row))
            console.print(latest)

    return app


def _chosen_source(name: str) -> FeatureSource:
    try:
        return get_source(name)
    except ValueError as exc:
        raise fail(str(exc)) from exc


def _store_payload(source: FeatureSource, payload: bytes, data: Path, origin: str) -> None:
    """Parse, then merge; a payload that does not parse leaves the store untouched."""
    try:
        observations = source.parse(payload)
    except ValueError as exc:
        raise fail(f"{exc} (from {origin}); nothing was stored") from exc
    try:
        result = write_observations(data, source.name, observations)
    except (SourceStoreError, ValueError) as exc:
        raise fail(str(exc)) from exc
    first, last = observations["time"].iloc[0], observations["time"].iloc[-1]
    Console().print(
        f"{source.name}: {result.offered} observation(s) read from {origin} "
        f"({first:%Y-%m-%d} to {last:%Y-%m-%d}), {result.added} new; {result.total} stored "
        f"in {result.path}", soft_wrap=True)


def _values(row: pd.Series) -> str:
    """The value columns of one observation row, as ``12.5`` or ``a=1, b=2``."""
    values = row.drop(["time", "first_seen"])
    if len(values) == 1:
        return f"{values.iloc[0]:,.6g}"
    return ", ".join(f"{k}={v:,.6g}" for k, v in values.items())


def _show_result(console: Console, result: CollectResult, data: Path) -> None:
    """One row per source; errors and notes below the table, unwrapped."""
    table = Table(title=f"news collected into {data}")
    for column in ("source", "fetched", "new", "duplicates", "skipped", "status"):
        table.add_column(column, justify="right" if column in ("fetched", "new") else "left")
    for item in result.sources:
        skipped = ", ".join(f"{n} {why}" for why, n in item.skipped.items()) or "-"
        table.add_row(item.source, str(item.fetched), str(item.new), str(item.duplicates),
                      skipped, _status(item))
    console.print(table)
    for item in result.sources:
        if item.error:
            console.print(f"[red]failed[/red] {redact(item.error)}", soft_wrap=True)
        elif item.note:
            console.print(f"[yellow]{item.source}[/yellow]: {item.note}", soft_wrap=True)
    console.print(f"{result.new} new item(s) stored")


def _status(item: SourceResult) -> str:
    if item.error:
        return "[red]error[/red]"
    if item.not_modified:
        return "not modified"
    if item.note and item.note.startswith("skipped"):
        return "[yellow]skipped[/yellow]"
    return "[yellow]ok (damaged)[/yellow]" if item.note else "ok"


app = build_app()
