"""A session from a trained run: the market, span, policy, monitors and feed wired up.

``replay_session`` opens (or resumes) a session folder that replays a span of stored or
synthetic bars through the paper book. The span is chosen as ``quantum backtest``
chooses it (backtest.run.model_span: by default the run's untouched test part, and a
span overlapping training is refused unless allowed), so the two can be compared.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backtest.engine import backtest_config, span_steps
from backtest.run import BacktestOptions, model_span
from envs.config import EnvConfig
from envs.market_spec import MarketSpec
from envs.registry import aligned_for
from live.feed import ReplayFeed
from live.journal import read_state
from live.monitors import DriftReference, KillSwitch
from live.policy import RemotePolicy, in_process
from live.session import PaperSession, SessionSettings
from rl.checkpoint import TrainedRun

API_KEY_ENV = "QUANTUM_API_KEY"


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
        trained.check_spaces(data.assets, len(data.features), config)
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
    return Replay(session, ReplayFeed(aligned_for(market.keys()), lo, last), steps)


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
    import pandas as pd

    data = trained.market.arrays()
    part = ((trained.manifest or {}).get("splits") or {}).get("train")
    lo, hi = data.first_valid, data.n_bars - 1
    if part:
        stamps = data.timestamps
        lo = max(lo, int(np.searchsorted(stamps, pd.Timestamp(part["first"]).value)))
        hi = int(np.searchsorted(stamps, pd.Timestamp(part["last"]).value, side="right")) - 1
    return DriftReference.of(data.feats[lo : hi + 1], tuple(data.features))
