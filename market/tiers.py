"""Each symbol's maintenance-margin tiers from the exchange, recorded with the data.

Liquidation depends on an asset's own bracket table (larger positions pay a higher
maintenance rate), so a run on collected data should be margined with the tables the
venue published when the data was collected, not another asset's. ccxt's unified
``fetch_leverage_tiers`` / ``fetch_market_leverage_tiers`` give, per symbol, tiers of
(minNotional, maxNotional, maintenanceMarginRate, maxLeverage); this module turns them
into the simulator's (floor, rate) tables and keeps them in the store as one JSON file
per exchange::

    <store>/tiers/exchange=<id>/tiers.json
      {"exchange": ..., "fetched_at": ISO time, "source": ccxt method and version,
       "symbols": {SYMBOL: {"asset": ..., "brackets": [[floor, rate], ...],
                            "max_leverage": [...]}}}

Written atomically and merged (a fetch for some symbols keeps the others). Which venues
serve notional tiers: bybit publicly (v5 market/risk-limit); binanceusdm only to signed
requests (an API key in the environment, market.exchanges); okx's position tiers count
contracts, not notional, so they cannot become a notional table and are refused.

Training on a store applies its tables to the run's assets (rl.config.TrainConfig
.with_store_tiers), so the run's saved config carries them to backtests, paper trading
and serving.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import ccxt

from market.exchanges import CollectorError, describe_error, env_names, error_hint
from market.schema import asset_of
from market.store import write_json_atomic

TIERS_FILE: Final = "tiers.json"
CONTRACT_TIERS: Final = frozenset({"okx"})
"""Venues whose tiers ccxt reports in contracts (minSz/maxSz), not quote notional."""


class TiersError(CollectorError):
    """Tiers could not be fetched, converted or read; the message says why and what to do."""


def tiers_path(root: str | Path, exchange_id: str) -> Path:
    return Path(root) / "tiers" / f"exchange={exchange_id}" / TIERS_FILE


def brackets_of(symbol: str, tiers: list[dict[str, Any]]) -> tuple[list[list[float]], list[float]]:
    """ccxt leverage tiers of one symbol -> the simulator's (floor, rate) rows, ascending
    from 0, and each tier's max leverage. A table that is not contiguous, not ascending,
    or holds a rate outside (0, 1) is refused: a wrong table moves every liquidation."""
    rows = sorted(tiers, key=lambda t: float(t.get("minNotional") or 0.0))
    if not rows:
        raise TiersError(f"{symbol}: the exchange returned no leverage tiers")
    brackets, leverage = [], []
    for k, tier in enumerate(rows):
        floor = float(tier.get("minNotional") or 0.0)
        rate = tier.get("maintenanceMarginRate")
        lev = tier.get("maxLeverage")
        if rate is None or lev is None or not 0.0 < float(rate) < 1.0 or float(lev) <= 0.0:
            raise TiersError(f"{symbol}: tier {k + 1} has no usable maintenance rate or max "
                             f"leverage ({rate!r}, {lev!r})")
        if k == 0 and floor != 0.0:
            raise TiersError(f"{symbol}: the first tier starts at {floor:g}, not 0")
        if k and (floor <= brackets[-1][0] or float(rate) < brackets[-1][1]):
            raise TiersError(f"{symbol}: tiers are not ascending at tier {k + 1}")
        previous_max = rows[k - 1].get("maxNotional") if k else None
        if previous_max is not None and not math.isclose(float(previous_max), floor,
                                                         rel_tol=1e-9):
            raise TiersError(f"{symbol}: tier {k + 1} starts at {floor:g}, the tier before "
                             f"ends at {float(previous_max):g}")
        brackets.append([floor, float(rate)])
        leverage.append(float(lev))
    return brackets, leverage


def fetch_tiers(exchange: ccxt.Exchange, symbols: list[str]) -> dict[str, dict[str, Any]]:
    """The tiers of ``symbols`` (ccxt unified) from the exchange, converted (brackets_of)."""
    if exchange.id in CONTRACT_TIERS:
        raise TiersError(f"{exchange.id} reports leverage tiers in contracts, not notional: "
                         "its runs keep the published or default tables (envs.config."
                         "MarginConfig)")
    has = exchange.has
    if not (has.get("fetchLeverageTiers") or has.get("fetchMarketLeverageTiers")):
        raise TiersError(f"{exchange.id} offers no leverage tiers through ccxt")
    try:
        if exchange.markets is None:
            exchange.load_markets()
        if has.get("fetchMarketLeverageTiers") is True:
            raw = {s: exchange.fetch_market_leverage_tiers(s) for s in symbols}
        else:
            raw = exchange.fetch_leverage_tiers(symbols)
    except ccxt.BaseError as err:
        hint = error_hint(err, exchange.id)
        if isinstance(err, ccxt.AuthenticationError):
            names = ", ".join(env_names(exchange.id).values())
            hint = (f"{exchange.id} serves leverage tiers only to signed requests: set {names}, "
                    "or keep the published tables.")
        raise TiersError(f"leverage tiers from {exchange.id}: {describe_error(err)}. "
                         f"{hint}") from err
    out = {}
    for symbol in symbols:
        if symbol not in raw:
            raise TiersError(f"{exchange.id} returned no tiers for {symbol}")
        brackets, leverage = brackets_of(symbol, raw[symbol])
        out[symbol] = {"asset": asset_of(symbol), "brackets": brackets,
                       "max_leverage": leverage}
    return out


def record_tiers(root: str | Path, exchange: ccxt.Exchange, symbols: list[str],
                 now: datetime | None = None) -> Path:
    """Fetch ``symbols``' tiers and merge them into the store's tiers file (atomic)."""
    fetched = fetch_tiers(exchange, symbols)
    path = tiers_path(root, exchange.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    held = read_tiers(root, exchange.id) if path.exists() else {}
    write_json_atomic(path, {
        "exchange": exchange.id,
        "fetched_at": (now or datetime.now(UTC)).isoformat(),
        "source": f"ccxt {ccxt.__version__} fetch_leverage_tiers",
        "symbols": {**held, **fetched},
    })
    return path


def read_tiers(root: str | Path, exchange_id: str) -> dict[str, dict[str, Any]]:
    """The store's recorded tiers of ``exchange_id`` by symbol ({} when none were recorded);
    a damaged file is an error, not an empty table."""
    path = tiers_path(root, exchange_id)
    if not path.exists():
        return {}
    try:
        symbols = json.loads(path.read_text())["symbols"]
        for symbol, entry in symbols.items():
            brackets_of(symbol, [{"minNotional": f, "maintenanceMarginRate": r,
                                  "maxLeverage": lev}
                                 for (f, r), lev in zip(entry["brackets"],
                                                        entry["max_leverage"], strict=True)])
    except (OSError, ValueError, KeyError, TypeError, TiersError) as err:
        raise TiersError(f"{path}: unreadable leverage tiers ({err}); fetch them again with "
                         "`quantum data tiers` or delete the file") from err
    return symbols
