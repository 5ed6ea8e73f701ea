"""Which market a run, a backtest or a served model reads, as one typed value.

RLlib hands an env creator a plain ``env_config`` dict, and a run's YAML uses the same
dict, so the market keys live there (envs.registry). Everything that reasons about a
market - which store, venue and symbols, which synthetic seed, whether two configs read
the same market, how a backtest moves a model to another market - works on a
``MarketSpec`` instead, and only :meth:`MarketSpec.into` turns it back into dict keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from envs.data import MarketArrays

MARKET_KEYS = (
    "data_dir", "exchange", "symbols", "timeframe", "start", "end",
    "synthetic_days", "synthetic_seed", "planted_signal", "augment", "news",
)
"""The env_config keys that name the market (the rest configure the env and episodes)."""
EPISODE_KEYS = ("start_range", "start_fraction", "span", "num_envs")
"""env_config keys that say where a run's episodes start: a run's own, never a backtest's."""
SYNTHETIC_SEED = 7
"""The synthetic market's seed when a config names none (market.synthetic's default)."""


class MarketSpec(BaseModel):
    """Stored data (``data_dir`` with venue, symbols, timeframe, dates) or the synthetic
    market built in memory (days, seed); optionally a planted test signal or augmentation.
    Fields left None are not written to the env_config (the registry's defaults apply)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    data_dir: str | None = Field(None, description="Parquet store (market.store); None: synthetic.")
    exchange: str | None = Field(None, description="Venue in the store (ccxt id).")
    symbols: tuple[str, ...] | None = Field(None, description="Symbols, in observation order.")
    timeframe: str | None = Field(None, description="Bar timeframe (ccxt name); None: 1m.")
    start: str | None = Field(None, description="First bar time (UTC) read from the store.")
    end: str | None = Field(None, description="Last bar time (UTC) read from the store.")
    synthetic_days: float | None = None
    synthetic_seed: int | None = None
    planted_signal: dict[str, Any] | None = None
    augment: dict[str, Any] | None = None
    news: dict[str, Any] | None = None
    """News features (news.source.NewsConfig fields): what the model reads beside the
    bars; not part of the market's identity (the same bars are the same sample)."""

    @classmethod
    def of(cls, env_config: Mapping[str, Any]) -> MarketSpec:
        """The market an env_config names (its other keys are ignored)."""
        return cls.model_validate({k: env_config[k] for k in MARKET_KEYS if k in env_config})

    def keys(self) -> dict[str, Any]:
        """The env_config keys of this market (lists where YAML and RLlib expect lists)."""
        out = self.model_dump(exclude_none=True)
        if "symbols" in out:
            out["symbols"] = list(out["symbols"])
        return out

    def into(self, env_config: Mapping[str, Any]) -> dict[str, Any]:
        """``env_config`` with its market replaced by this one."""
        rest = {k: v for k, v in env_config.items() if k not in MARKET_KEYS}
        return {**rest, **self.keys()}

    @property
    def stored(self) -> bool:
        return self.data_dir is not None

    @property
    def venue(self) -> str:
        """The store's exchange (the registry reads 'synthetic' when none is named)."""
        return self.exchange or "synthetic"

    @property
    def bar_timeframe(self) -> str:
        return self.timeframe or "1m"

    def identity(self) -> tuple:
        """What makes two markets the same one for the in-sample guard: venue and symbols
        of a store (dates aside), or the synthetic seed with its planted/augment variant."""
        if self.stored:
            from market.loader import DEFAULT_SYMBOLS

            return ("store", self.venue, frozenset(self.symbols or DEFAULT_SYMBOLS))
        return (
            "synthetic",
            SYNTHETIC_SEED if self.synthetic_seed is None else self.synthetic_seed,
            json.dumps(self.planted_signal, sort_keys=True),
            json.dumps(self.augment, sort_keys=True),
        )

    def describe(self) -> str:
        """Which market this is, in one line."""
        if not self.stored:
            seed = SYNTHETIC_SEED if self.synthetic_seed is None else self.synthetic_seed
            days = 30.0 if self.synthetic_days is None else self.synthetic_days
            return f"synthetic market in memory (seed {seed}, {days:g} days)"
        return f"{self.exchange} {', '.join(self.symbols or ())} under {self.data_dir}"

    def arrays(self) -> MarketArrays:
        """The (cached, per process) market arrays (envs.registry.market_for)."""
        from envs.registry import market_for

        return market_for(self.keys())

    def elsewhere(
        self,
        data_path: Path | None = None,
        synthetic_seed: int | None = None,
        synthetic_days: float | None = None,
        symbols: str | Sequence[str] | None = None,
        exchange: str | None = None,
        model_symbols: Sequence[str] | None = None,
    ) -> MarketSpec:
        """This market swapped for the one a backtest names: a store folder (its exchange
        and symbols), or a fresh synthetic market (another seed: data the policy never
        saw). Dates are dropped: a run's data span says what it trained on, not what a
        backtest reads (the backtest's own span options choose that).

        A store's exchange is ``exchange``, else this market's own on its own store, else
        the store's only one. Its symbols are ``symbols`` (names or ccxt symbols), else
        ``model_symbols``, else this market's, else the defaults when stored (else every
        stored one). Errors (ValueError) say what the store holds."""
        if isinstance(symbols, str):
            symbols = symbols.split(",")
        chosen = [s.strip() for s in symbols or () if s.strip()]
        fields = self.model_dump(exclude={"start", "end"})
        if data_path is not None:
            fields.update(data_dir=str(data_path), exchange=None, synthetic_days=None,
                          synthetic_seed=None)
        elif synthetic_seed is not None or synthetic_days is not None:
            fields["data_dir"] = None
            if synthetic_seed is not None:
                fields["synthetic_seed"] = synthetic_seed
            if synthetic_days is not None:
                fields["synthetic_days"] = synthetic_days
        spec = MarketSpec.model_validate(fields)
        if not spec.stored:
            if exchange is not None:
                raise ValueError(f"--exchange {exchange} names an exchange of a store: give the "
                                 "store with --data-path")
            return spec.model_copy(update={"symbols": tuple(chosen)}) if chosen else spec
        if data_path is None and exchange is None:
            exchange = spec.venue
        return spec._on_store(exchange, chosen, model_symbols or spec.symbols)

    def _on_store(
        self, exchange: str | None, chosen: list[str], trained: Sequence[str] | None
    ) -> MarketSpec:
        from market.loader import MarketChoiceError, choose_exchange, choose_symbols
        from market.loader import symbols_of_assets as as_symbols
        from market.store import ParquetStore

        store = ParquetStore(self.data_dir)
        venue = choose_exchange(store, exchange)
        stored = store.symbols(venue, self.bar_timeframe)
        wanted = as_symbols(list(chosen or trained or []), stored) or None
        try:
            symbols = choose_symbols(store, venue, wanted, self.bar_timeframe)
        except MarketChoiceError as err:
            if chosen or not wanted:
                raise
            raise MarketChoiceError(
                f"{err}; the model trades {len(wanted)} assets ({', '.join(wanted)}): pick "
                f"{len(wanted)} stored ones with --symbols"
            ) from err
        return self.model_copy(update={"exchange": venue, "symbols": tuple(symbols)})
