"""A real Serve application over HTTP on loopback, serving briefly trained policies.

Shared by the Serve integration tests (one Serve instance per module, on the session's
local Ray); nothing here mocks our own stack.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from envs.registry import make_env
from rl.train import train
from serving.auth import API_KEY_HEADER, SCOPES, digest
from tests.integration.configs import TINY_ENV, tiny

API_KEY = "test-key-0123456789abcdef"
"""A plain key with every scope (the security tests use scoped keys from a key file)."""


@dataclass
class Served:
    url: str
    results: Path
    runs: tuple[Path, Path]
    """Two trained runs (different seeds): the served one and a swap target."""
    live: Path | None = None
    """The service's live_dir (paper sessions it reports on), when it has one."""

    def client(self, key: str | None = API_KEY, timeout: float = 30.0) -> httpx.Client:
        headers = {API_KEY_HEADER: key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_runs(root: Path) -> tuple[Path, Path]:
    """The served run (seed 11, trained with the risk shield on and a VaR cap that binds)
    and a swap target (seed 12, no shield)."""
    runs = []
    for seed, shield in ((11, {"enabled": True, "max_var": 0.02}), (12, {"enabled": False})):
        config = tiny(seed=seed, steps=256, **{"env_config.env.shield": shield})
        runs.append(train(config, root / f"policy_{seed}").run_dir)
    return runs[0], runs[1]


def app_args(model_path: Path, results: Path) -> dict:
    """The build_app arguments of the test service; a redeploy (model swap) reuses them so
    the swapped app keeps every route (live sessions included)."""
    live = results.parent / "live"
    live.mkdir(parents=True, exist_ok=True)
    return {"model_path": str(model_path), "key_digests": [digest(API_KEY)],
            "legacy_scopes": list(SCOPES), "results_dir": str(results), "live_dir": str(live),
            "state_dir": str(results.parent / "state"),
            "signals_per_minute": 0}  # no signal quota: the load tests measure serving


def start(runs: tuple[Path, Path], results: Path, **extra) -> Served:
    from ray import serve

    from serving.app import build_app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    args = {**app_args(runs[0], results), **extra}
    try:
        serve.run(build_app(args), name="quantum", route_prefix="/")
    except BaseException:  # never leave Serve up on this port for the next module
        serve.shutdown()
        raise
    return Served(f"http://127.0.0.1:{port}", results, runs, Path(args["live_dir"]))


def observation_json(seed: int = 0, n: int = 1) -> list[dict]:
    """n observations of the tiny market as the env builds them, as JSON-ready lists."""
    env = make_env({**TINY_ENV, "num_envs": n})
    obs, _ = env.reset(seed=seed)
    return [{k: np.asarray(v[i], dtype=float).tolist() for k, v in obs.items()} for i in range(n)]


def fuzz_operation(url: str, operation, headers: dict, failures: list[str],
                   max_examples: int) -> int:
    """Schemathesis cases of one OpenAPI operation against the service; 5xx answers are
    appended to ``failures``. Returns how many requests were made."""
    from hypothesis import HealthCheck, given, settings

    checked = 0

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def fuzz(case):
        nonlocal checked
        response = case.call(base_url=url, headers=headers, timeout=30)
        checked += 1
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.path}: {response.status_code}")

    fuzz()
    return checked
