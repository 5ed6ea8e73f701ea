"""The `quantum` command: one entry point, a subcommand group per job."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.logging import RichHandler

from backtest.cli import analyze_bias_command, backtest_command
from cluster.cli import jobs_app, submit_command
from live.cli import app as live_app
from llm.cli import app as llm_app
from llm.cli import chat_command
from market.cli import app as data_app
from news.cli import app as news_app
from rl.cli import train_command, tune_command
from serving.cli import keys_app, serve_command, signal_command

app = typer.Typer(
    help="Quantum: RL agents for crypto perpetual futures, on Ray.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data_app, name="data", no_args_is_help=True)
app.command("train")(train_command)
app.command("tune")(tune_command)
app.command("backtest")(backtest_command)
app.command("analyze-bias")(analyze_bias_command)
app.command("serve")(serve_command)
app.command("signal")(signal_command)
app.add_typer(keys_app, name="keys", no_args_is_help=True)
app.command("submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    submit_command
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(llm_app, name="llm", no_args_is_help=True)
app.command("chat")(chat_command)
app.add_typer(live_app, name="live", no_args_is_help=True)
app.add_typer(news_app, name="news", no_args_is_help=True)


@app.callback()
def _root(
    log_level: Annotated[
        str, typer.Option(help="Logging level (DEBUG, INFO, WARNING).")
    ] = "WARNING",
) -> None:
    """Configure logging once for every subcommand."""
    logging.basicConfig(
        level=log_level.upper(), format="%(message)s", handlers=[RichHandler(show_path=False)]
    )


def main() -> None:
    app()
