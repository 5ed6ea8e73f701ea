"""Building ccxt exchange instances for USDT-margined perpetuals, and keeping their keys secret.

Public market data (OHLCV, mark-price OHLCV, funding history) needs no API key.
Keys are only for private endpoints; they come from the environment or a
git-ignored ``.env`` file (the real environment wins), under the names::

    QUANTUM_<EXCHANGE_ID>_API_KEY, QUANTUM_<EXCHANGE_ID>_SECRET, QUANTUM_<EXCHANGE_ID>_PASSWORD

(e.g. ``QUANTUM_OKX_PASSWORD``: okx calls it a passphrase). Keys never reach a
log: ccxt logs request headers at DEBUG level, so every secret handed to an
exchange is registered with :data:`REDACTOR`, a logging filter that replaces it
with ``***`` in ccxt's and Quantum's market loggers.

This module also holds what the collector must know about an exchange beyond
ccxt's unified API: which symbols qualify (linear perpetual swaps), the largest
page each endpoint serves, how to bound a request at an end time, and what to
tell the user about an error (CollectorError).
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

import ccxt
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from market.schema import Kind, asset_of, perp_symbol

log = logging.getLogger(__name__)

DEFAULT_DOTENV: Final = Path(".env")

_MARKET_OPTIONS: Final[dict[str, dict[str, object]]] = {
    "binanceusdm": {"fetchMarkets": {"types": ["linear"]}},
    "bybit": {"fetchMarkets": {"types": ["linear"]}},
    "okx": {"fetchMarkets": {"types": ["swap"]}},
}
"""load_markets options per exchange: fetch only the markets a perp collector uses
(bybit would otherwise also load spot, inverse and option markets; okx spot,
futures and options), which saves requests and rate-limit weight."""

_FUNDING_PAGE_MAX: Final[dict[str, int]] = {"binanceusdm": 1000, "bybit": 200, "okx": 100}
"""Largest funding-history page per exchange (their API docs); ccxt's `features`
does not report it. Other exchanges get the conservative FALLBACK_PAGE_LIMIT."""

FALLBACK_PAGE_LIMIT: Final = 100


class CollectorError(RuntimeError):
    """Collection stopped. The message says what failed, for which series, and what to do;
    everything fetched before the failure is already in the store."""


class Credentials(BaseModel):
    """API credentials of one exchange; the values print as '**********' in any repr."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = Field(None, description="API key (ccxt `apiKey`).")
    secret: SecretStr | None = Field(None, description="API secret (ccxt `secret`).")
    password: SecretStr | None = Field(
        None, description="API passphrase (ccxt `password`; okx requires one)."
    )

    def ccxt_config(self) -> dict[str, str]:
        """The ccxt constructor entries for the credentials that are set."""
        fields = {"apiKey": self.api_key, "secret": self.secret, "password": self.password}
        return {name: value.get_secret_value() for name, value in fields.items() if value}


class SecretRedactor(logging.Filter):
    """Replaces registered secrets with '***' in log records (message, args and traceback).

    Attached to ccxt's logger and Quantum's market loggers: a logger's filters see
    every record created on it, whichever handler later writes it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def __repr__(self) -> str:
        return f"SecretRedactor({len(self._secrets)} secrets)"

    def register(self, *values: str | None) -> None:
        """Remember secret values to scrub from now on (empty values are ignored)."""
        self._secrets.update(v for v in values if v)

    def redact(self, text: str) -> str:
        """`text` with every registered secret replaced by '***' (longest first)."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True


REDACTOR: Final = SecretRedactor()
for _name in ("ccxt.base.exchange", "market.collector", __name__):
    logging.getLogger(_name).addFilter(REDACTOR)


def protect(exchange: ccxt.Exchange) -> None:
    """Register an exchange's credentials with REDACTOR and filter its logger too.

    Called by make_exchange and by the collector, so an exchange a caller built
    by hand is covered as well.
    """
    REDACTOR.register(
        *(getattr(exchange, attr, None) for attr in ("apiKey", "secret", "password", "uid"))
    )
    logger = getattr(exchange, "logger", None)
    if isinstance(logger, logging.Logger):
        logger.addFilter(REDACTOR)


def env_names(exchange_id: str) -> dict[str, str]:
    """Environment variable name per credential field, e.g. QUANTUM_OKX_PASSWORD."""
    prefix = f"QUANTUM_{exchange_id.upper()}_"
    return {
        "api_key": prefix + "API_KEY",
        "secret": prefix + "SECRET",
        "password": prefix + "PASSWORD",
    }


def load_credentials(
    exchange_id: str,
    env: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike[str] | None = DEFAULT_DOTENV,
) -> Credentials:
    """Credentials of `exchange_id` from `env`, or else from os.environ over the .env file.

    With `env` given, only `env` is read (tests pass a dict). Otherwise the .env
    file fills in what the real environment does not set; it never overrides it.
    """
    if env is None:
        from_file = {}
        if dotenv_path is not None and Path(dotenv_path).is_file():
            from_file = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
        env = {**from_file, **os.environ}
    values = {field: env.get(name) or None for field, name in env_names(exchange_id).items()}
    credentials = Credentials(**values)
    REDACTOR.register(*(v for v in values.values() if v))
    return credentials


def make_exchange(
    exchange_id: str,
    *,
    env: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike[str] | None = DEFAULT_DOTENV,
    credentials: bool = True,
    enable_rate_limit: bool = True,
) -> ccxt.Exchange:
    """A ccxt exchange set up for USDT-margined perpetual swaps.

    - `enableRateLimit` on, so ccxt spaces requests by the exchange's published limits;
    - `defaultType` swap, and load_markets restricted to linear/swap markets where
      the exchange supports it (binanceusdm, bybit, okx);
    - credentials from `env` / the environment / .env when `credentials` is true
      (public data needs none; with keys set, load_markets may call a private
      currencies endpoint, so pass credentials=False to stay fully public).
    Raises ValueError for an id ccxt does not know.
    """
    if exchange_id not in ccxt.exchanges:
        close = [e for e in ccxt.exchanges if exchange_id.lower()[:4] in e][:8]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise ValueError(
            f"unknown ccxt exchange id {exchange_id!r}{hint}; e.g. binanceusdm, bybit, okx"
        )
    options: dict[str, object] = {"defaultType": "swap", **_MARKET_OPTIONS.get(exchange_id, {})}
    config: dict[str, object] = {"enableRateLimit": enable_rate_limit, "options": options}
    if credentials:
        config.update(load_credentials(exchange_id, env, dotenv_path).ccxt_config())
    exchange = getattr(ccxt, exchange_id)(config)
    protect(exchange)
    log.debug("built ccxt %s (authenticated: %s)", exchange_id, bool(exchange.apiKey))
    return exchange


def max_page_limit(exchange: ccxt.Exchange, kind: Kind) -> int:
    """Most rows one request of `kind` returns on this exchange's linear swaps.

    Bars: ccxt's `features` (okx serves fewer mark-price candles than trade
    candles). Funding: a per-exchange table. The collector never asks for more,
    because an exchange that caps a page silently would otherwise leave holes.
    """
    if kind is Kind.FUNDING:
        return _FUNDING_PAGE_MAX.get(exchange.id, FALLBACK_PAGE_LIMIT)
    swap = (getattr(exchange, "features", None) or {}).get("swap") or {}
    ohlcv = (swap.get("linear") or {}).get("fetchOHLCV") or {}
    if kind is Kind.MARK and ohlcv.get("mark"):
        return int(ohlcv["mark"])
    return int(ohlcv.get("limit") or FALLBACK_PAGE_LIMIT)


def until_params(exchange: ccxt.Exchange, kind: Kind, until_ms: int) -> dict[str, int]:
    """Request params that end a page at `until_ms` (inclusive).

    ccxt maps the unified `until` param to each exchange's end-time field for
    OHLCV and funding history, except okx's funding history, which takes okx's
    own `after` (exclusive: records strictly earlier than it).
    """
    if exchange.id == "okx" and kind is Kind.FUNDING:
        return {"after": until_ms + 1}
    return {"until": until_ms}


def check_timeframe(exchange: ccxt.Exchange, timeframe: str) -> None:
    """Fail early on a timeframe the exchange does not serve (ccxt lists its timeframes)."""
    offered = exchange.timeframes or {}
    if offered and timeframe not in offered:
        raise CollectorError(
            f"{exchange.id} has no {timeframe} bars; use one of {', '.join(offered)}"
        )


def check_symbols(exchange: ccxt.Exchange, symbols: Iterable[str]) -> dict[str, dict]:
    """The markets of `symbols`, each required to be a linear perpetual swap."""
    markets = exchange.markets or {}
    perps = sorted(s for s, m in markets.items() if m.get("swap") and m.get("linear"))
    found = {}
    for symbol in symbols:
        market = markets.get(symbol)
        guess = perp_symbol(asset_of(symbol))
        example = guess if guess in perps else (perps[0] if perps else "BTC/USDT:USDT")
        if market is None:
            near = list(
                dict.fromkeys(
                    ([guess] if guess in perps else [])
                    + difflib.get_close_matches(symbol, perps, 3)
                )
            )
            hint = f"did you mean {', '.join(near)}? " if near else ""
            raise CollectorError(
                f"unknown symbol {symbol!r} on {exchange.id}: {hint}its {len(perps)} linear "
                f"perpetuals include {', '.join(perps[:5]) or 'none'}"
            )
        if not market.get("swap"):
            raise CollectorError(
                f"{symbol} on {exchange.id} is a {market.get('type')} market, not a perpetual "
                f"swap; collect a linear perpetual such as {example}"
            )
        if not market.get("linear"):
            raise CollectorError(
                f"{symbol} on {exchange.id} is an inverse (coin-margined) perpetual; Quantum "
                f"collects linear (USDT-margined) perpetuals such as {example}"
            )
        found[symbol] = market
    return found


def describe_error(exc: BaseException) -> str:
    """Exception type and message with any registered secret scrubbed (URLs can carry keys)."""
    return REDACTOR.redact(f"{type(exc).__name__}: {exc}")


def error_hint(exc: BaseException, exchange_id: str) -> str:
    """What the user can do about a permanent ccxt error."""
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        names = ", ".join(env_names(exchange_id).values())
        return f"Check {names}, or unset them: public market data needs no API key."
    if isinstance(exc, ccxt.BadSymbol):
        return "Use a ccxt unified symbol of a linear perpetual, e.g. BTC/USDT:USDT."
    if isinstance(exc, ccxt.NotSupported):
        return "The exchange does not offer this data; leave this kind out."
    return "Check the arguments (symbol, timeframe, dates) against the exchange's API."
