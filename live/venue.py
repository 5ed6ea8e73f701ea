"""Which exchange a session trades on, and the consent real money needs.

``paper`` fills on the simulator and needs no exchange account. ``testnet`` trades on the
exchange's test network (ccxt's sandbox mode) with testnet keys. ``live`` trades real
money and refuses to start without ``--i-understand-this-trades-real-money``. Keys come
only from the environment or a git-ignored ``.env`` (market.exchanges: QUANTUM_<ID>_API_KEY,
_SECRET, and _PASSWORD where ccxt requires one: okx's API passphrase), are registered with
the log redactor before the exchange exists, and are never part of a session's settings,
its W&B config or a Ray runtime_env.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

import ccxt

from market.exchanges import DEFAULT_DOTENV, env_names, load_credentials, make_exchange

CONSENT_FLAG = "--i-understand-this-trades-real-money"


class TradingMode(StrEnum):
    PAPER = "paper"
    TESTNET = "testnet"
    LIVE = "live"


class VenueError(ValueError):
    """A session that may not trade on the exchange as asked; the message says why."""


def trading_exchange(exchange_id: str, mode: TradingMode, *, consent: bool = False,
                     env: dict[str, str] | None = None,
                     dotenv_path: str | os.PathLike[str] | None = DEFAULT_DOTENV,
                     ) -> ccxt.Exchange:
    """An authenticated ccxt exchange for ``mode`` (testnet: sandbox URLs)."""
    if mode is TradingMode.PAPER:
        raise VenueError("paper sessions fill on the simulator: they take no exchange account")
    if mode is TradingMode.LIVE and not consent:
        raise VenueError(f"--mode live places orders with real money: add {CONSENT_FLAG} "
                         "to confirm, or use --mode testnet")
    credentials = load_credentials(exchange_id, env, dotenv_path)
    names = env_names(exchange_id)
    needed = ["api_key", "secret"]
    if exchange_id in ccxt.exchanges and \
            getattr(ccxt, exchange_id)().requiredCredentials.get("password"):
        needed.append("password")  # okx's API passphrase
    missing = [names[f] for f in needed if getattr(credentials, f) is None]
    if missing:
        where = "the environment" if env is not None else \
            f"the environment or {Path(dotenv_path or DEFAULT_DOTENV)}"
        raise VenueError(f"--mode {mode.value} needs {', '.join(missing)} in {where} "
                         f"({'testnet' if mode is TradingMode.TESTNET else 'live'} keys)")
    exchange = make_exchange(exchange_id, env=env, dotenv_path=dotenv_path)
    if mode is TradingMode.TESTNET:
        try:
            exchange.set_sandbox_mode(True)
        except ccxt.NotSupported as err:
            raise VenueError(f"{exchange_id} has no test network in ccxt: {err}") from err
    return exchange
