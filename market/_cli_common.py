"""Helpers of the `quantum data` commands: argument parsing, progress, errors, result tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from market.calibrate import Calibration
    from market.importer import ImportResult

console = Console()


def split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code=code)


def pair(text: str) -> tuple[str, str]:
    target, sep, source = text.partition("=")
    if not sep or not target.strip() or not source.strip():
        raise ValueError(f"--column {text!r} must be store_name=file_name, e.g. close=Close")
    return target.strip(), source.strip()


def one_line(exc: Exception) -> str:
    """A pydantic error as its messages only (no URLs, no input dumps); others unchanged."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors():
        where = ".".join(map(str, error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1e6 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def show_import(
    results: Sequence[ImportResult], skipped: Sequence[tuple[Path, str]], data: Path
) -> None:
    """One row per imported file, then the files left out and why."""
    table = Table(title=f"imported into {data}")
    for col in ("kind", "symbol", "tf", "file", "rows", "written", "first", "last"):
        table.add_column(col)
    for r in results:
        table.add_row(r.key.kind.value, r.key.symbol, r.key.timeframe or "-", r.path.name,
                      f"{r.rows:,}", f"{r.written:,}", f"{r.first:%Y-%m-%d %H:%M}",
                      f"{r.last:%Y-%m-%d %H:%M}")
    console.print(table)
    for path, why in skipped:
        console.print(f"[yellow]skipped[/yellow] {path.name}: {why}")


def show_calibration(result: Calibration) -> None:
    """The fitted per-asset parameters next to the facts behind them, then the shared ones."""
    facts, config = result.facts, result.config
    table = Table(title=f"fitted to {facts.bars:,} {facts.timeframe} bars")
    for col in ("asset", "price", "ann. vol", "notional/min", "bounce", "acf1", "funding bp"):
        table.add_column(col, justify="right")
    for asset, f in facts.assets.items():
        profile = config.profile(asset)
        table.add_row(asset, fmt(profile.price), f"{profile.annual_vol:.3f}",
                      f"{profile.notional_per_minute:,.0f}", f"{profile.microstructure_noise:.3f}",
                      f"{f.return_acf1:+.4f}",
                      f"{1e4 * f.funding_mean:+.2f} ± {1e4 * f.funding_std:.2f}")
    console.print(table)
    pairs = ", ".join(f"{a}/{b} {r:.3f}" for a, b, r in config.correlations)
    console.print(
        f"correlations {pairs}; vol of vol {config.vol_of_vol}; premium "
        f"{1e4 * config.premium_base:+.2f} bp ± {1e4 * config.premium_noise:.2f} bp, "
        f"reversion {config.premium_reversion_minutes:.0f} min"
    )
