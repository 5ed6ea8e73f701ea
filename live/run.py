"""A session from a trained run: the market, span, policy, monitors and feed wired up.

``replay_session`` opens (or resumes) a session folder that replays a span of stored or
synthetic bars through the paper book. The span is chosen as ``quantum backtest``
chooses it (backtest.run.model_span: by default the run's untouched test part, and a
span overlapping training is refused unless allowed), so the two can be compared.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.engine import backtest_config, span_steps
from backtest.run import BacktestOptions, model_span
from envs.config import EnvConfig
from envs.market_spec import MarketSpec
from envs.registry import aligned_for
from live.feed import ExchangeFeed, NewsInput, ReplayFeed
from live.journal import read_state
from live.monitors import DriftReference, KillSwitch
from live.policy import RemotePolicy, in_process
from live.session import PaperSession, SessionSettings
from market.schema import asset_of
from rl.checkpoint import TrainedRun

API_KEY_ENV = "QUANTUM_API_KEY"
log = logging.getLogger("quantum.live")


@dataclass
class Replay:
    session: PaperSession
    feed: ReplayFeed
    steps: int
    """Decisions in the span (backtest.engine.span_steps)."""

    def run(self) -> dict:
        return self.session.run(self.feed.ticks, self.feed.start, max_steps=self.steps)


def replay_session(
    folder: Path,
    model_path: Path | None = None,
    market: MarketSpec | None = None,
    options: BacktestOptions | None = None,
    kill: KillSwitch | None = None,
    serve_url: str | None = None,
    alert_webhook: str | None = None,
    allow_in_sample: bool = False,
) -> Replay:
    """A replay session in ``folder``: new from the arguments, or resumed from its
    session.json (then only ``folder`` is read; the stored settings win)."""
    folder = Path(folder)
    state = read_state(folder)
    if state is not None:
        settings = SessionSettings.model_validate(state["settings"])
        if not settings.replay:
            raise ValueError(f"{folder} holds a live session, not a replay")
        trained = TrainedRun.open(settings.model_path)
        market = MarketSpec.model_validate(settings.market)
        config = EnvConfig.model_validate(settings.env)
        data = market.arrays()
        lo, last = (int(np.searchsorted(data.timestamps, t)) for t in settings.span)
        steps = config.episode_steps
    else:
        if model_path is None or market is None:
            raise ValueError("a new session needs a model and a market")
        options = options or BacktestOptions()
        trained = TrainedRun.open(model_path)
        data = market.arrays()
        config = options.env_config(trained.env)
        lo, hi, _ = model_span(trained, market, data, config, options, allow_in_sample)
        trained.check_spaces(data, config)
        steps = span_steps(data, config, lo, hi)
        config = backtest_config(config, steps)
        last = lo + steps * config.bars_per_step
        settings = SessionSettings(
            session_id=folder.name or uuid.uuid4().hex[:8], model_path=str(model_path),
            market=market.model_dump(mode="json"), env=config.model_dump(mode="json"),
            kill=kill or KillSwitch(), replay=True, serve_url=serve_url,
            alert_webhook=alert_webhook,
            span=(int(data.timestamps[lo]), int(data.timestamps[last])),
        )
    policy = _policy(settings, trained, config, data.assets)
    drift = _drift(trained, settings.kill)
    session = PaperSession(folder, settings, policy, drift)
    feed = ReplayFeed(aligned_for(market.keys()), lo, last, _replay_news(market, data))
    return Replay(session, feed, steps)


def _replay_news(market: MarketSpec, data) -> NewsInput | None:
    """The run's news for a replay: its headlines (generated or stored) aligned once to the
    whole span, as the backtest of the same span aligns them."""
    if market.news is None:
        return None
    from envs.core.layout import M_CLOSE
    from news.source import NewsConfig, aligned_news

    config = NewsConfig.model_validate(market.news)
    aligned = aligned_news(config, data.timestamps, data.mkt[:, :, M_CLOSE], data.assets,
                           market.data_dir)
    return NewsInput(market.news, market.data_dir, aligned)


def _live_news(market: MarketSpec) -> NewsInput | None:
    """The run's news for a live session: collected headlines, read at every bar."""
    if market.news is None:
        return None
    from news.source import NewsConfig

    if NewsConfig.model_validate(market.news).source != "store":
        raise ValueError("the model reads the synthetic news stream, which exists only for "
                         "history: a live session needs collected news (train with "
                         "news.source 'store' and keep `quantum news collect` running)")
    return NewsInput(market.news, market.data_dir)


def _policy(settings: SessionSettings, trained: TrainedRun, config, assets):
    if settings.serve_url is None:
        return in_process(trained.module)
    key = os.environ.get(API_KEY_ENV)
    if not key:
        raise ValueError(f"--serve-url needs the service's API key in ${API_KEY_ENV}")
    return RemotePolicy(settings.serve_url, key, config, tuple(assets))


def _drift(trained: TrainedRun, kill: KillSwitch) -> DriftReference | None:
    """The training part's feature distribution (the run's manifest names the part; without
    one, the run's whole market)."""
    if kill.max_psi is None:
        return None
    data = trained.market.arrays()
    part = ((trained.manifest or {}).get("splits") or {}).get("train")
    lo, hi = data.first_valid, data.n_bars - 1
    if part:
        stamps = data.timestamps
        lo = max(lo, int(np.searchsorted(stamps, pd.Timestamp(part["first"]).value)))
        hi = int(np.searchsorted(stamps, pd.Timestamp(part["last"]).value, side="right")) - 1
    return DriftReference.of(data.feats[lo : hi + 1], tuple(data.features))


@dataclass
class Live:
    session: PaperSession
    feed: ExchangeFeed

    def run(self) -> dict:
        return self.session.run(self.feed.ticks, self.feed.start)


def live_session(
    folder: Path,
    model_path: Path | None = None,
    market: MarketSpec | None = None,
    kill: KillSwitch | None = None,
    serve_url: str | None = None,
    alert_webhook: str | None = None,
    initial_capital: float | None = None,
    exchange=None,
    poll_s: float = 5.0,
    mode: str = "paper",
    consent: bool = False,
    trade_exchange=None,
) -> Live:
    """A paper session on live bars: ``market`` names the store the feed keeps current and
    the exchange (ccxt id) it polls, its symbols in the model's order and the first bar
    the features read (``start``). Resumed from ``folder`` when it holds a session.
    ``exchange``: a ready ccxt exchange (tests); default: make_exchange without keys.
    ``mode`` testnet or live sends the orders to the exchange (live.executor) with keys
    from the environment (live.venue; live needs ``consent`` at every start);
    ``trade_exchange``: a ready authenticated exchange (tests)."""
    folder = Path(folder)
    state = read_state(folder)
    if state is not None:
        settings = SessionSettings.model_validate(state["settings"])
        if settings.replay:
            raise ValueError(f"{folder} holds a replay; start it with --replay")
        trained = TrainedRun.open(settings.model_path)
        market = MarketSpec.model_validate(settings.market)
        config = EnvConfig.model_validate(settings.env)
    else:
        if model_path is None or market is None or not market.stored or not market.start:
            raise ValueError("a live session needs a model, a store, an exchange and a start")
        trained = TrainedRun.open(model_path)
        config = BacktestOptions(initial_capital=initial_capital).env_config(trained.env)
        config = config.model_copy(update={"record_ledger": True, "episode_steps": 10**12})
        settings = SessionSettings(
            session_id=folder.name, model_path=str(model_path),
            market=market.model_dump(mode="json"), env=config.model_dump(mode="json"),
            kill=kill or KillSwitch(), serve_url=serve_url, alert_webhook=alert_webhook,
            mode=mode,
        )
    assets = tuple(asset_of(s) for s in market.symbols)
    trained_assets = tuple(asset_of(a) for a in trained.assets())
    if assets != trained_assets:
        raise ValueError(f"the model trades {list(trained_assets)} in that order; the session "
                         f"names {list(assets)}: live trading uses the assets it trained on")
    if exchange is None:
        from market.exchanges import make_exchange

        exchange = make_exchange(market.venue, credentials=False)
    lacking = [m for m in ("fetchOHLCV", "fetchMarkOHLCV", "fetchFundingRateHistory")
               if not exchange.has.get(m)]
    if "fetchOHLCV" in lacking:
        raise ValueError(f"{exchange.id} has no OHLCV endpoint (ccxt has[fetchOHLCV]); pick "
                         "another exchange")
    if lacking:
        log.warning("%s lacks %s: marks fall back to closes, funding is not paid", exchange.id,
                    lacking)
    from market.store import ParquetStore

    feed = ExchangeFeed(exchange, ParquetStore(market.data_dir), tuple(market.symbols),
                        market.bar_timeframe, pd.Timestamp(market.start, tz="UTC"),
                        poll_s=poll_s, stale_bars=settings.kill.stale_bars or float("inf"),
                        news=_live_news(market))
    policy = _policy(settings, trained, config, assets)
    executor = _executor(settings, market, assets, config, folder, consent, trade_exchange,
                         fresh=state is None)
    session = PaperSession(folder, settings, policy, _drift(trained, settings.kill),
                           executor=executor)
    feed.on_incomplete = lambda message: session.alerts.send("incomplete_bar", message)
    return Live(session, feed)


def _executor(settings, market, assets, config, folder, consent, trade_exchange, fresh):
    """The exchange side of a testnet/live session (None for paper): keys, markets, cross
    margin and the account's leverage set and verified on a new session."""
    from live.executor import ExchangeExecutor
    from live.router import OrderRouter
    from live.venue import TradingMode, trading_exchange

    mode = TradingMode(settings.mode)
    if mode is TradingMode.PAPER:
        return None
    exchange = trade_exchange or trading_exchange(market.venue, mode, consent=consent)
    exchange.load_markets()
    executor = ExchangeExecutor(exchange, dict(zip(assets, market.symbols, strict=True)),
                                OrderRouter(exchange, folder), settings.session_id, config,
                                settings.reconcile_limit)
    if fresh:
        import ccxt

        try:
            executor.prepare(int(config.limits.max_leverage))
        except ccxt.BaseError as err:
            raise ValueError(f"{exchange.id}: could not set cross margin and "
                             f"{int(config.limits.max_leverage)}x leverage: {err}") from err
    return executor
