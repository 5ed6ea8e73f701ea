"""A replayed session trading on the fake binanceusdm: the policy, the priced replay feed
and the session builder shared by the exchange-session tests, the kill -9 tests (whose
session runs in a child process talking to the venue over loopback HTTP) and
scripts/fake_exchange_replay.py."""

from __future__ import annotations

from collections.abc import Callable

import ccxt
import numpy as np

from envs.config import EnvConfig
from envs.spaces import action_space
from live.executor import ExchangeExecutor
from live.feed import ReplayFeed
from live.monitors import KillSwitch
from live.router import OrderRouter
from live.session import PaperSession, SessionSettings
from market.synthetic import SyntheticConfig, generate_market
from tests.unit.live.fake_futures import FuturesVenue
from tests.unit.market.ccxt_fakes import FakeVenue, fake_exchange

KEYS = {"QUANTUM_BINANCEUSDM_API_KEY": "test-key", "QUANTUM_BINANCEUSDM_SECRET": "test-secret"}


def keys(exchange_id: str) -> dict[str, str]:
    """Test credentials for ``exchange_id`` as the environment would carry them."""
    prefix = f"QUANTUM_{exchange_id.upper()}"
    out = {f"{prefix}_API_KEY": "test-key", f"{prefix}_SECRET": "test-secret"}
    if getattr(ccxt, exchange_id)().requiredCredentials.get("password"):  # okx's passphrase
        out[f"{prefix}_PASSWORD"] = "test-password"
    return out

SYMBOLS = {"BTC": "BTC/USDT:USDT", "ETH": "ETH/USDT:USDT"}
IDS = {"BTC": "BTCUSDT", "ETH": "ETHUSDT"}

Bars = dict[str, tuple[float, float, float]]
"""One bar per market id: its (open, high, low) last prices."""
Tick = Callable[[dict[str, float], list[tuple[str, float, float]], Bars | None], None]
"""Trades the bar that closed through the venue's resting conditional orders ({market
id: (open, high, low)}, where given), pays [(market id, rate, mark)] and sets the
venue's prices ({market id: price}): in the order the simulator runs a bar (stops, then
funding at its close)."""


def replay_frame():
    return generate_market(SyntheticConfig(days=2, seed=5, assets=("BTC", "ETH"))).aligned()


def venue_tick(venue: FuturesVenue | FakeVenue) -> Tick:
    """The venue in this process: bars traded, prices and funding set directly (a venue
    whose market ids differ from IDS names them in ``aliases``)."""
    native = getattr(venue, "aliases", {})

    def tick(prices: dict[str, float], funding: list[tuple[str, float, float]],
             bars: Bars | None = None) -> None:
        if bars:
            venue.trade_bar({native.get(m, m): tuple(bar) for m, bar in bars.items()})
        for market_id, rate, mark in funding:
            venue.pay_funding(native.get(market_id, market_id), rate, mark)
        venue.prices.update({native.get(m, m): p for m, p in prices.items()})

    return tick


def policy(style: int = 0):
    space = action_space(EnvConfig(), 2)
    space.seed(1)
    step = {"n": 0}

    def act(obs):
        action = {k: np.asarray(v)[None] for k, v in space.sample().items()}
        action["trade"][:] = 2 if step["n"] % 4 < 2 else 0  # long, then short, ...
        action["size"][:] = 0.2
        action["risk"][:] = 1.0  # the widest stops: the simulator checks them in the entry
        action["execution"][0, ::2] = style  # bar, the exchange from the next; market
        step["n"] += 1
        return action

    return act


class PricedFeed(ReplayFeed):
    """The replay, with the venue's price at each bar's close set to the next bar's open:
    where the simulator fills the orders sent then. Each bar is first traded through the
    venue's resting stop and take-profit orders (its open, high and low: the prices the
    simulator checks its stops against), then funding is paid at funding times."""

    tick: Tick = None

    def _priced(self, tick):
        b = int(np.searchsorted(self.frame.index.asi8, tick.bar_time))
        row = min(b + 1, len(self.frame) - 1)
        funding = [(market_id, float(self.frame[(asset, "funding_rate")].iloc[b]),
                    float(self.frame[(asset, "mark")].iloc[b]))
                   for asset, market_id in IDS.items()
                   if self.frame[(asset, "funding_event")].iloc[b] and b > self.first]
        bars = {market_id: tuple(float(self.frame[(asset, k)].iloc[b])
                                 for k in ("open", "high", "low"))
                for asset, market_id in IDS.items()}
        self.tick({market_id: float(self.frame[(asset, "open")].iloc[row])
                   for asset, market_id in IDS.items()}, funding, bars)
        return tick

    def start(self):
        return self._priced(super().start())

    def ticks(self, last_bar):
        for tick in super().ticks(last_bar):
            yield self._priced(tick)


def session(folder, venue: FakeVenue | None, frame, last, kill_fraction=0.02, first=2400,
            style=0, exchange: ccxt.Exchange | None = None, tick: Tick | None = None):
    """A session over bars [first, last) of `frame` trading on `venue` (in this process) or
    on `exchange` whose venue `tick` prices (elsewhere)."""
    config = EnvConfig(record_ledger=True, episode_steps=10**9, bars_per_step=2,
                       funding_multiplier=1.0)  # the venue pays funding at the data's rate
    settings = SessionSettings(session_id="testnet", model_path="-", market={},
                               env=config.model_dump(mode="json"), replay=True,
                               kill=KillSwitch(max_drawdown=None, daily_loss=None))
    if exchange is None:
        exchange, tick = fake_exchange(venue, env=keys(venue.exchange_id)), venue_tick(venue)
    exchange.load_markets()
    executor = ExchangeExecutor(exchange, SYMBOLS, OrderRouter(exchange, folder), "run-1",
                                config, kill_fraction)
    feed = PricedFeed(frame, first, last)
    feed.tick = tick
    return PaperSession(folder, settings, policy(style), executor=executor), feed
