"""A paper session on live bars (the exchange feed over ccxt's binanceusdm class and a fake
venue): trades bar by bar, trips the kill switch on stale data, flattens when bars come
back, and a restarted process resumes the same book."""

import numpy as np
import pandas as pd

from envs.config import EnvConfig
from envs.spaces import action_space
from live.feed import ExchangeFeed
from live.monitors import KillSwitch
from live.session import KILLED, RUNNING, PaperSession, SessionSettings
from market.store import ParquetStore
from tests.unit.market.ccxt_fakes import DATA_START, MINUTE, BinanceVenue, fake_exchange

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
START = DATA_START + 2 * 1440 * MINUTE + 20 * MINUTE + 30_000


def _policy():
    space = action_space(EnvConfig(), 2)
    space.seed(1)

    def act(obs):
        action = {k: np.asarray(v)[None] for k, v in space.sample().items()}
        action["trade"][:] = 2
        action["size"][:] = 0.2
        action["execution"][0, ::2] = 0  # market orders: a position at the next bar
        return action

    return act


def _session(folder, venue, max_polls):
    def sleep(seconds):
        venue.now_ms += int(seconds * 1000)

    feed = ExchangeFeed(fake_exchange(venue), ParquetStore(folder / "store"), SYMBOLS, "1m",
                        pd.Timestamp(DATA_START, unit="ms", tz="UTC"), poll_s=60.0,
                        stale_bars=3.0, sleep=sleep, max_polls=max_polls)
    config = EnvConfig(record_ledger=True, episode_steps=10**9)
    settings = SessionSettings(session_id="paper", model_path="-", market={},
                               env=config.model_dump(mode="json"),
                               kill=KillSwitch(stale_bars=3.0, max_drawdown=0.5, daily_loss=0.5))
    return PaperSession(folder / "session", settings, _policy()), feed


def test_a_live_session_trades_trips_on_stale_data_and_flattens_when_bars_return(tmp_path):
    venue = BinanceVenue(now_ms=START)
    session, feed = _session(tmp_path, venue, max_polls=6)
    state = session.run(feed.ticks, feed.start)
    assert state["status"] == RUNNING and state["kill"] is None
    assert state["bars_done"] == 4 and any(state["account"]["book"][a]["quantity"]
                                           for a in ("BTC", "ETH"))

    # a restarted process: the exchange stops sending bars, then sends them again
    venue.inject("ohlcv", *[(200, [])] * 12)
    session, feed = _session(tmp_path, venue, max_polls=14)
    state = session.run(feed.ticks, feed.start)
    assert state["kill"]["rule"] == "stale_data"
    assert state["status"] == KILLED
    assert all(row["quantity"] == 0.0 for row in state["account"]["book"].values())
    ledger = session.journal.rows("ledger.jsonl")
    closing = [r for r in ledger if r["bar_time"] > state["kill"]["bar_time"]]
    assert {r["kind"] for r in closing} == {"fill"} and len(closing) == 2
    times = [r["bar_time"] for r in session.journal.rows("steps.jsonl")]
    assert times == sorted(set(times))  # every bar once, across the restart and the outage
    assert np.all(np.diff(times) == MINUTE * 1_000_000)


def test_features_drifting_from_the_training_data_trip_the_kill_switch(tmp_path):
    from live.feed import ReplayFeed, arrays_upto
    from live.monitors import DriftReference
    from market.synthetic import SyntheticConfig, generate_market

    frame = generate_market(SyntheticConfig(days=2, seed=5)).aligned()
    data = arrays_upto(frame, len(frame) - 1)
    config = EnvConfig(record_ledger=True, episode_steps=10**9)
    # minute features cluster (volatility regimes), so short windows read as drift at the
    # textbook 0.25; a day-long window and a limit of 1 separate regimes from a real shift
    kill = KillSwitch(max_psi=1.0, psi_bars=600, max_drawdown=None, daily_loss=None)
    settings = SessionSettings(session_id="drift", model_path="-", market={},
                               env=config.model_dump(mode="json"), kill=kill, replay=True)
    space = action_space(config, data.n_assets)
    space.seed(0)

    def policy(obs):
        return {k: np.asarray(v)[None] for k, v in space.sample().items()}

    same = DriftReference.of(data.feats[data.first_valid :], tuple(data.features))
    shifted = DriftReference.of(data.feats[data.first_valid :] + 3.0, tuple(data.features))
    feed = ReplayFeed(frame, 2400, 2500)
    calm = PaperSession(tmp_path / "calm", settings, policy, same).run(feed.ticks, feed.start)
    drifted = PaperSession(tmp_path / "drifted", settings, policy, shifted).run(feed.ticks,
                                                                              feed.start)
    assert calm["kill"] is None and max(calm["psi"].values()) < 1.0
    assert drifted["kill"]["rule"].startswith("feature_drift:")
    assert drifted["kill"]["value"] > 3.0 and drifted["status"] == KILLED


def test_a_flatten_request_trips_the_kill_switch_and_closes_the_book(tmp_path):
    venue = BinanceVenue(now_ms=START)
    session, feed = _session(tmp_path, venue, max_polls=6)
    state = session.run(feed.ticks, feed.start)
    held = [a for a in ("BTC", "ETH") if state["account"]["book"][a]["quantity"]]
    assert state["status"] == RUNNING and held

    session.journal.request_flatten()  # what `quantum live flatten` and the HTTP route do
    session, feed = _session(tmp_path, venue, max_polls=6)
    state = session.run(feed.ticks, feed.start)

    assert state["kill"]["rule"] == "manual_flatten" and state["status"] == KILLED
    assert all(row["quantity"] == 0.0 for row in state["account"]["book"].values())
    closing = [r for r in session.journal.rows("ledger.jsonl")
               if r["bar_time"] > state["kill"]["bar_time"]]
    assert {r["kind"] for r in closing} == {"fill"} and len(closing) == len(held)
    assert not session.journal.flatten_requested()
