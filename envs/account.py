"""The account as a first-class object: what the simulator keeps about one trading book.

The kernels keep an account as three float arrays (envs.core.layout): ``acct`` (wallet,
peak, day state, cost totals, running risk estimates, episode totals), ``book`` (per
asset: position, entry, the working order and its schedule, stops, when the position
opened) and ``hist`` (the ring of risk vectors the observation shows). :class:`Account`
is that state with names and times instead of offsets and bar indices, so it can be
written to JSON, read back on another process or machine, and put back on any market
arrays that hold its bar: training, backtests, paper/live trading and serving share it.

Its observation is the env's own (:meth:`Account.observe` runs ``observe_batch``), never
a re-implementation. Floats round-trip through JSON exactly (Python writes the shortest
repr that reads back to the same double).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.core import layout as L
from envs.core.observe import N_RISK, RISK_FEATURES, observe_batch, portfolio_features
from envs.core.params import pack_params
from envs.core.step import new_state, reset_batch
from envs.data import MarketArrays
from envs.spaces import text_shape

FORMAT = 1
"""Version of the serialised form; a reader refuses others."""

ACCOUNT_FIELDS: dict[str, int] = {
    "wallet": L.WALLET,
    "peak_equity": L.PEAK,
    "day_start_equity": L.DAY_START,
    "day": L.DAY,
    "bad_debt": L.BAD_DEBT,
    "fees": L.FEES,
    "funding": L.FUNDING,
    "spread_cost": L.SPREAD,
    "impact_cost": L.IMPACT,
    "realized_pnl": L.REALIZED,
    "liquidation_fees": L.LIQ_FEES,
    "equity": L.EQUITY,
    "step_traded": L.TRADED,
    "liquidated": L.LIQUIDATED,
    "maintenance_margin": L.MAINT,
    "ew_variance": L.EWVAR,
    "episode_steps": L.EP_STEPS,
    "episode_reward": L.EP_REWARD,
    "episode_sq_return": L.EP_SQ_RETURN,
    "episode_max_drawdown": L.EP_MAX_DRAWDOWN,
    **{f"episode_{term}": L.EP_TERMS + k
       for k, term in enumerate(("log_return", "drawdown", "turnover", "leverage"))},
}
"""Name -> acct offset: every offset but HIST_HEAD (the ring's head, implied by the
oldest-first history)."""

BOOK_FIELDS: dict[str, int] = {
    "quantity": L.QTY,
    "entry_price": L.ENTRY,
    "working_quantity": L.REMAIN,
    "working_bars_left": L.BARS_LEFT,
    "working_style": L.STYLE,
    "limit_price": L.LIMIT_PX,
    "clip": L.CLIP,
    "stop_loss_price": L.SL_PX,
    "take_profit_price": L.TP_PX,
    "shield_scale": L.SHIELD_SCALE,
    "shield_rules": L.SHIELD_RULES,
}
"""Name -> book offset: every offset but OPENED_AT (serialised as ``bars_held``)."""
BOOK_DEFAULTS: dict[str, float] = {"shield_scale": 1.0, "shield_rules": 0.0}
"""Book fields an account may leave out (what the risk shield last did: nothing)."""


class AccountError(ValueError):
    """A serialised account that cannot be read or does not fit the market it is put on."""


@dataclass
class Account:
    """One trading account's full state at the close of bar ``bar_time`` (ns, UTC).

    ``values``: ACCOUNT_FIELDS by name; ``book``: per asset, BOOK_FIELDS by name plus
    ``bars_held`` (bars since the position opened); ``risk_history``: the risk vectors
    (RISK_FEATURES), oldest first; ``pending``: a decision whose step has not finished
    (paper/live trading between bars), else None.
    """

    assets: tuple[str, ...]
    bar_time: int
    values: dict[str, float]
    book: dict[str, dict[str, float]]
    risk_history: list[list[float]]
    pending: dict[str, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Free-form labels (session id, model id); not read by the simulator."""

    @classmethod
    def fresh(cls, data: MarketArrays, initial_balance: float, risk_window: int,
              bar: int) -> Account:
        """A flat account with ``initial_balance`` at bar ``bar`` of ``data``, as an
        episode starts (reset_batch: one risk vector of zeros' log return recorded)."""
        from envs.config import EnvConfig

        config = EnvConfig(initial_balance=initial_balance, risk_window=risk_window)
        state = new_state(1, data.n_assets, risk_window, N_RISK)
        obs = empty_observation(data, config)
        params = pack_params(config, data.assets)
        reset_batch(data.mkt, data.feats, data.days, params, state["acct"], state["book"],
                    state["hist"], state["t"], state["steps"], np.ones(1, dtype=bool),
                    np.array([bar], dtype=np.int64),
                    obs["market"], obs["risk"], obs["portfolio"])
        return cls.from_state(state["acct"][0], state["book"][0], state["hist"][0], data, bar)

    @classmethod
    def with_positions(cls, data: MarketArrays, config, bar: int, equity: float,
                       notionals: np.ndarray) -> Account:
        """An account holding ``notionals`` (signed USDC per asset, at bar ``bar``'s marks)
        with ``equity`` and no history (envs.core.incremental.reset_into_book)."""
        from envs.core.accounting import bracket_arrays
        from envs.core.incremental import reset_into_book

        state = new_state(1, data.n_assets, config.risk_window, N_RISK)
        qty = np.asarray(notionals, dtype=np.float64) / data.mkt[bar, :, L.M_MARK]
        params = pack_params(config, data.assets)
        reset_into_book(state["acct"][0], state["book"][0], state["hist"][0], data.mkt, params,
                        *bracket_arrays(config.margin, data.assets),
                        bar, float(data.days[bar]), float(equity), qty)
        return cls.from_state(state["acct"][0], state["book"][0], state["hist"][0], data, bar)

    @classmethod
    def from_state(cls, acct: np.ndarray, book: np.ndarray, hist: np.ndarray,
                   data: MarketArrays, bar: int, pending: Mapping[str, float] | None = None,
                   ) -> Account:
        """The kernels' arrays of one account at bar index ``bar`` of ``data``."""
        head = int(acct[L.HIST_HEAD])
        ring = np.concatenate([hist[head:], hist[:head]])
        return cls(
            assets=tuple(data.assets),
            bar_time=int(data.timestamps[bar]),
            values={name: float(acct[i]) for name, i in ACCOUNT_FIELDS.items()},
            book={
                asset: {
                    **{name: float(book[a, i]) for name, i in BOOK_FIELDS.items()},
                    "bars_held": float(bar - book[a, L.OPENED_AT]) if book[a, L.QTY] else 0.0,
                }
                for a, asset in enumerate(data.assets)
            },
            risk_history=ring.tolist(),
            pending=dict(pending) if pending is not None else None,
        )

    def bar_index(self, data: MarketArrays) -> int:
        """This account's bar in ``data``; an error when the data does not hold it."""
        b = int(np.searchsorted(data.timestamps, self.bar_time))
        if b >= data.n_bars or int(data.timestamps[b]) != self.bar_time:
            raise AccountError(f"the market data does not hold the account's bar "
                               f"{_iso(self.bar_time)}")
        return b

    def to_state(self, data: MarketArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(acct, book, hist, bar index) for the kernels, on ``data`` (same assets, order)."""
        if tuple(data.assets) != self.assets:
            raise AccountError(f"the account trades {list(self.assets)}, the market data "
                               f"holds {list(data.assets)}")
        b = self.bar_index(data)
        acct = np.zeros(L.N_ACCT)
        for name, i in ACCOUNT_FIELDS.items():
            acct[i] = self.values[name]
        book = np.zeros((len(self.assets), L.N_BOOK))
        for a, asset in enumerate(self.assets):
            row = self.book[asset]
            for name, i in BOOK_FIELDS.items():
                book[a, i] = row[name]
            book[a, L.OPENED_AT] = b - row["bars_held"] if row["quantity"] else 0.0
        hist = np.asarray(self.risk_history, dtype=np.float64).reshape(-1, N_RISK).copy()
        return acct, book, hist, b

    def observe(self, data: MarketArrays, config) -> dict[str, np.ndarray]:
        """The env's observation of this account at its bar (batch axis 1): the same
        ``observe_batch`` the env runs, on the same state."""
        acct, book, hist, b = self.to_state(data)
        if len(hist) != config.risk_window:
            raise AccountError(f"the account keeps {len(hist)} risk vectors, the model "
                               f"observes {config.risk_window}")
        obs = empty_observation(data, config)
        observe_batch(acct[None], book[None], hist[None], data.mkt, data.feats,
                      pack_params(config, data.assets), np.array([b], dtype=np.int64),
                      np.ones(1, dtype=bool), obs["market"], obs["risk"], obs["portfolio"])
        observe_text(data, np.array([b], dtype=np.int64), obs)
        return obs

    def targets(self, data: MarketArrays, config, trade: np.ndarray,
                size: np.ndarray) -> tuple[np.ndarray, dict[str, dict]]:
        """The signed target notionals (USDC at the bar's closes) the env would trade toward
        for this decision (``trade`` in {0, 1, 2}, ``size`` in [0, 1] per asset): the
        leverage, concentration and position caps, then the risk shield when the config has
        it on, then the daily-loss reduce-only rule; the decide kernel's own
        ``target_quantities`` on a copy of the state. Also what the shield did per asset
        (envs.core.shield.shield_report)."""
        from envs.core.accounting import bracket_arrays
        from envs.core.decide import target_quantities
        from envs.core.shield import shield_report

        acct, book, _, b = self.to_state(data)
        n = data.n_assets
        quantities = np.empty(n)
        target_quantities(acct, book, data.mkt, pack_params(config, data.assets),
                          *bracket_arrays(config.margin, data.assets), b,
                          np.asarray(trade, dtype=np.int64), np.asarray(size, dtype=np.float64),
                          quantities, np.empty((2, n)))
        if not config.shield.enabled:
            book[:, L.SHIELD_SCALE] = 1.0
            book[:, L.SHIELD_RULES] = 0.0
        return quantities * data.mkt[b, :, L.M_CLOSE], shield_report(book, self.assets)

    def positions(self) -> dict[str, float]:
        """Signed position (base units) per asset."""
        return {asset: row["quantity"] for asset, row in self.book.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "assets": list(self.assets),
            "bar_time": self.bar_time,
            "values": self.values,
            "book": self.book,
            "risk_history": self.risk_history,
            "pending": self.pending,
            "meta": self.meta,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Account:
        """The inverse of to_dict, checked: every field present (but BOOK_DEFAULTS') and
        numeric."""
        try:
            if raw.get("format") != FORMAT:
                raise AccountError(f"account format {raw.get('format')!r}, expected {FORMAT}")
            assets = tuple(str(a) for a in raw["assets"])
            values = {name: float(raw["values"][name]) for name in ACCOUNT_FIELDS}
            book = {
                asset: {name: float(raw["book"][asset][name] if name not in BOOK_DEFAULTS
                                    else raw["book"][asset].get(name, BOOK_DEFAULTS[name]))
                        for name in (*BOOK_FIELDS, "bars_held")}
                for asset in assets
            }
            history = [[float(x) for x in row] for row in raw["risk_history"]]
            pending = raw.get("pending")
            pending = {k: float(v) for k, v in pending.items()} if pending else None
            bar_time = int(raw["bar_time"])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, AccountError):
                raise
            raise AccountError(f"unreadable account: {type(err).__name__}: {err}") from err
        if any(len(row) != N_RISK for row in history) or not history:
            raise AccountError(f"risk_history rows must hold {N_RISK} values {RISK_FEATURES}")
        return cls(assets, bar_time, values, book, history, pending, dict(raw.get("meta") or {}))

    @classmethod
    def from_json(cls, text: str) -> Account:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise AccountError(f"account is not JSON: {err}") from err
        if not isinstance(raw, Mapping):
            raise AccountError("an account is a JSON object")
        return cls.from_dict(raw)


def observe_text(data: MarketArrays, bars: np.ndarray, obs: dict[str, np.ndarray]) -> None:
    """Fill the `text` part of a batch of observations at ``bars`` (each env's current bar,
    the bar its market window ends at); nothing when the data carry no headlines."""
    if data.text is not None:
        data.text.text_batch(bars, out=obs["text"])


def empty_observation(data: MarketArrays, config, n: int = 1) -> dict[str, np.ndarray]:
    """Observation buffers of ``n`` accounts (the batch axis), as the env allocates them."""
    obs = {
        "market": np.empty((n, config.window, data.n_assets, len(data.features)), np.float32),
        "risk": np.empty((n, config.risk_window, N_RISK), np.float32),
        "portfolio": np.empty((n, data.n_assets, len(portfolio_features(config))), np.float32),
    }
    shape = text_shape(data)
    if shape is not None:
        obs["text"] = np.empty((n, *shape), np.float32)
    return obs


def _iso(ns: int) -> str:
    import pandas as pd

    return pd.Timestamp(ns, tz="UTC").isoformat()

