"""Command-line input of the quantum commands, checked before anything starts: config
files, the store's exchange and symbols, run folders, and the one-line errors (exit code 2)
that bad input ends with. Imports nothing heavy, so every command can use it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer
import yaml
from rich.console import Console

from rl.config import TrainConfig

console = Console()


def read_config(config: str) -> TrainConfig:
    """``defaults`` or a TrainConfig YAML file; a bad file is a ValueError naming it."""
    import pydantic

    from market._cli_common import one_line

    if config == "defaults":
        return TrainConfig()
    if not Path(config).is_file():
        raise FileNotFoundError(f"no config file {config} (a TrainConfig YAML file or 'defaults')")
    try:
        return TrainConfig.from_yaml(config)
    except yaml.MarkedYAMLError as err:
        where = f" at line {err.problem_mark.line + 1}" if err.problem_mark else ""
        raise ValueError(f"{config} is not valid YAML: {err.problem}{where}") from err
    except pydantic.ValidationError as err:
        raise ValueError(f"{config}: {one_line(err)}") from err


def store_market(config: TrainConfig, exchange_option: str | None = None) -> TrainConfig:
    """A config that reads a store names its exchange and symbols: the ones it gives when
    the store holds them, else the store's only exchange and the default symbols (or, when
    those are not stored, every stored one). Errors say what the store holds."""
    from market.loader import choose_exchange, choose_symbols
    from market.store import ParquetStore

    env = config.env_config
    if env.get("data_dir") is None:
        if exchange_option is not None:
            raise ValueError(f"--exchange {exchange_option} names an exchange of a store: "
                             "give the store with --data")
        return config
    store = ParquetStore(env["data_dir"])
    exchange = choose_exchange(store, env.get("exchange"))
    symbols = choose_symbols(store, exchange, env.get("symbols"), env.get("timeframe", "1m"))
    return config.with_overrides(**{"env_config.exchange": exchange, "env_config.symbols": symbols})


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Bad input (config files, --set keys, stores, exchanges, symbols, run folders) ends
    the command with one line and exit code 2, never a traceback."""
    import pydantic

    try:
        yield
    except (ValueError, OSError, yaml.YAMLError) as err:
        text = str(err)
        if isinstance(err, pydantic.ValidationError):
            from market._cli_common import one_line

            text = one_line(err)
        console.print(f"[red]error:[/] {' '.join(text.split())}", soft_wrap=True)
        raise typer.Exit(2) from err


def check_run_folder(out: Path, resume: bool) -> None:
    """train()'s own preconditions, checked before anything loads."""
    from rl.checkpoint import RunPaths, latest_checkpoint

    paths = RunPaths(out)
    if resume and latest_checkpoint(paths) is None:
        raise FileNotFoundError(f"--resume: no checkpoint under {paths.checkpoints}")
    if not resume and paths.results.exists():
        raise FileExistsError(f"{out} already holds a run; use --resume or a new --out")


def check_env(config: TrainConfig) -> None:
    """The env settings, the market load (training reuses the loaded market) and the
    split's parts, each big enough for an episode."""
    from envs.registry import market_for
    from rl.splits import check_parts

    _ = config.env  # validates the env settings
    market_for(config.env_config)
    check_parts(config)
