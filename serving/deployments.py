"""The policy replica logic (batched signals, hot checkpoint swap) and the deployment that
hosts paper sessions (serving.jobs has the backtest runner).

``PolicyServer`` is mixed into the HTTP ingress rather than deployed behind it: on this
2-core machine every DeploymentHandle hop cost about 8 ms per request (measured: GET
/v1/models, one hop, 16 ms p50 against 8 ms for /healthz), as much as the whole bare
FastAPI request. Other deployments (the chatbot) call the ingress's ``signal`` method
through its handle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import ray
from ray import serve

log = logging.getLogger(__name__)


class PolicyServer:
    """One loaded checkpoint per replica; requests are batched into one forward pass.

    The checkpoint comes from ``user_config = {"model_path": ...}``, so changing it is a
    lightweight update: Serve calls ``reconfigure`` on the running replica instead of
    replacing it. The new model is loaded first and then replaces the old one in a
    single assignment, so a batch already running finishes on the model it started
    with and no request is dropped.
    """

    def _setup_policy(self, max_batch_size: int, wait_s: float,
                      swap_file: Path | None = None) -> None:
        import torch

        # small batches: one intra-op thread beats two that synchronise on every layer,
        # and the other core serves the proxy
        torch.set_num_threads(1)
        self.policy = None
        self.source = None
        self.base = None
        self.swap_file = swap_file
        self.swap_checked = 0.0
        self.predict_batch.set_max_batch_size(max_batch_size)
        self.predict_batch.set_batch_wait_timeout_s(wait_s)

    def _load(self, model_path: str) -> None:
        from serving.inference import LoadedPolicy

        policy = LoadedPolicy.load(model_path)
        self.policy = policy  # one assignment: in-flight batches keep their reference
        self.source = str(model_path)
        log.info("serving %s", policy.model_id)

    def reconfigure(self, config: dict) -> None:
        """The deployment's model (user_config), unless a swap made over HTTP on top of
        this same base model says otherwise."""
        if config.get("model_path"):
            self.base = str(config["model_path"])
        self.follow_swap(force=True)

    def _target(self) -> str | None:
        if self.swap_file is not None and self.swap_file.exists():
            from live.journal import JournalError, read_json

            try:
                swap = read_json(self.swap_file)
            except JournalError as err:
                log.error("ignoring the swapped-model file: %s", err)
                return self.base
            if swap.get("base") == self.base:
                return swap["model"]
        return self.base

    def follow_swap(self, force: bool = False) -> None:
        """Load the model another replica swapped to (checked at most once a second)."""
        now = time.monotonic()
        if not force and now - self.swap_checked < 1.0:
            return
        self.swap_checked = now
        target = self._target()
        if target and target != self.source:
            self._load(target)

    def swap(self, model_path: str, name: str) -> None:
        """Serve ``model_path`` from now on (this replica at once, the others within a
        second) and record it, so that a restarted replica serves it too. A model that
        does not load changes nothing."""
        from live.journal import write_json_atomic

        self._load(model_path)
        write_json_atomic(self.swap_file, {"base": self.base, "model": model_path,
                                           "name": name,
                                           "time": datetime.now(UTC).isoformat()})

    def info(self) -> dict:
        return self.policy.info()

    async def signal(self, request) -> dict:
        """A signal for one request (a SignalRequest, or its dict from another deployment's
        handle call), via the batch."""
        from serving.observation import observation_from_arrays, served_state
        from serving.schemas import SignalRequest

        if isinstance(request, dict):
            request = SignalRequest.model_validate(request)
        policy = self.policy
        if request.observation is not None:
            obs = observation_from_arrays(request.observation, policy.spec)
            result = await self.predict_batch((policy, obs))
            result["data_timestamp"] = None
            return result
        state = await asyncio.to_thread(served_state, request.bars, policy.spec,
                                        request.portfolio, request.account, request.news)
        result = await self.predict_batch((policy, state.obs))
        result = await asyncio.to_thread(policy.with_targets, result, state)
        result["data_timestamp"] = state.stamp.isoformat()
        return result

    async def risk(self, request) -> dict:
        """The risk report (backtest.risk_view.account_risk_report) of a RiskRequest's book
        at its last bar, under the served run's limits and margin tiers."""
        from backtest.risk_view import account_risk_report
        from serving.observation import served_state

        policy = self.policy
        state = await asyncio.to_thread(served_state, request.bars, policy.spec,
                                        request.portfolio, request.account)
        report = await asyncio.to_thread(account_risk_report, state.account, state.data,
                                         policy.env_config)
        return {"model_id": policy.model_id, "data_timestamp": state.stamp.isoformat(),
                "report": report}

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def predict_batch(self, items: list[tuple]) -> list[dict]:
        """One forward pass per model over the batch (a swap mid-batch splits it)."""
        out: list[dict | None] = [None] * len(items)
        by_model: dict[int, list[int]] = {}
        for i, (policy, _) in enumerate(items):
            by_model.setdefault(id(policy), []).append(i)
        for indices in by_model.values():
            policy = items[indices[0]][0]
            obs = {k: np.concatenate([items[i][1][k] for i in indices]) for k in items[0][1]}
            for i, result in zip(indices, policy.forward(obs), strict=True):
                out[i] = result
        return out


@ray.remote(num_cpus=0)
def _run_session(folder: str, model_path: str, request: dict, live: dict | None) -> dict:
    """One paper session to its end (a Ray task: the cluster runs the loop)."""
    from backtest.run import BacktestOptions
    from live.monitors import KillSwitch
    from live.run import live_session, replay_session
    from live.session import status_of
    from rl.checkpoint import TrainedRun

    kill = KillSwitch(max_drawdown=request["max_drawdown"], daily_loss=request["daily_loss"],
                      max_psi=request["max_psi"], stale_bars=request["stale_bars"])
    trained = TrainedRun.open(model_path)
    if request["replay"]:
        options = BacktestOptions(start=request["start"], end=request["end"],
                                  last_days=request["last_days"],
                                  initial_capital=request["initial_capital"])
        session = replay_session(Path(folder), model_path, trained.market, options, kill,
                                 allow_in_sample=request["allow_in_sample"])
    else:
        if live is None:
            raise ValueError("this service has no live market configured (live_market)")
        from envs.market_spec import MarketSpec

        session = live_session(Path(folder), model_path, MarketSpec.model_validate(live), kill,
                               initial_capital=request["initial_capital"])
    return status_of(session.run())


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
class LiveHost:
    """Runs paper sessions as Ray tasks (the Gateway stops and flattens them through their
    journals' request files).
    Status is read from the session folders (GET /v1/live/{id}), so it survives a replica
    restart; a session whose task died resumes where it stopped when started again."""

    def __init__(self, live_dir: str, live_market: dict | None = None) -> None:
        self.live_dir = Path(live_dir)
        self.live_market = live_market
        self.refs: dict[str, ray.ObjectRef] = {}

    def start(self, model_path: str, request: dict) -> dict:
        session_id = request["session_id"]
        ref = self.refs.get(session_id)
        if ref is not None and not ray.wait([ref], timeout=0)[0]:
            return {"id": session_id, "status": "already_running"}
        self.refs[session_id] = _run_session.remote(
            str(self.live_dir / session_id), model_path, request, self.live_market
        )
        return {"id": session_id, "status": "starting"}

    def outcome(self, session_id: str) -> dict | None:
        """The task's end: its final status, or its error (None while it runs)."""
        ref = self.refs.get(session_id)
        if ref is None or not ray.wait([ref], timeout=0)[0]:
            return None
        try:
            return {"result": ray.get(ref)}
        except Exception as err:  # the session's failure is its outcome, not the service's
            cause = getattr(err, "cause", None) or err
            return {"error": f"{type(cause).__name__}: {cause}"[:2000]}
