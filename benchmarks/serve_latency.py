"""Signal latency and throughput of the hierarchical policy through Ray Serve, side by side
with the same model behind a bare FastAPI + uvicorn app, in one run.

    .venv/bin/python benchmarks/serve_latency.py [--model-path runs/NAME] [--seconds 10]

Both answer POST /v1/signals with a ready observation (the env's, 3 assets). For each:
sequential latency percentiles over ``--requests`` calls, then ``--clients`` concurrent
clients (asyncio + httpx, keep-alive) for ``--seconds``: requests/s and percentiles.
The load generator runs in this process for both apps, so it costs them the same.
Serve runs on a local Ray instance with 2 CPUs, with Serve's throughput-optimised mode
(RAY_SERVE_THROUGHPUT_OPTIMIZED=1): requests go both through the proxy (port from
http_options, the default path) and straight to the ingress replica's own HTTP port
(direct ingress, ports 30000-30999, bound to the same host); keys ``serve_*`` are the proxy
path and ``serve_direct_*`` the direct one. The bare app is a uvicorn subprocess.
Without --model-path a tiny policy is trained first (256 env steps). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

KEY = "bench-key-0123456789abcdef"
MARKET = {"synthetic_days": 4, "synthetic_seed": 3}
TINY_TRAIN = {
    "env_config": {**MARKET, "env": {"record_ledger": False, "episode_steps": 32}},
    "ppo": {"train_batch_size": 256, "minibatch_size": 64, "num_epochs": 2},
    "rollouts": {"envs_per_runner": 8},
    "steps": 256,
    "tracking": {"wandb": False},
}


def _observation() -> dict:
    """One observation of the market the tiny policy trains on, as JSON lists."""
    import numpy as np

    from envs.registry import make_env

    obs, _ = make_env({**MARKET, "num_envs": 1}).reset(seed=1)
    return {k: np.asarray(v[0], dtype=float).tolist() for k, v in obs.items()}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentiles(samples: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": round(qs[49] * 1e3, 2), "p95_ms": round(qs[94] * 1e3, 2),
            "p99_ms": round(qs[98] * 1e3, 2)}


async def _sequential(url: str, body: dict, n: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}) as client:
        for _ in range(20):
            (await client.post("/v1/signals", json=body)).raise_for_status()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            (await client.post("/v1/signals", json=body)).raise_for_status()
            times.append(time.perf_counter() - start)
    return _percentiles(times)


async def _concurrent(url: str, body: dict, clients: int, seconds: float) -> dict[str, float]:
    times: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            response = await client.post("/v1/signals", json=body)
            if response.status_code == 200:
                times.append(time.perf_counter() - start)
            else:
                errors += 1

    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}, limits=limits,
                                 timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"rps": round(len(times) / elapsed, 1), "errors": errors, **_percentiles(times)}


def _wait(url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not come up")


def _measure(url: str, body: dict, args) -> dict:
    seq = asyncio.run(_sequential(url, body, args.requests))
    conc = asyncio.run(_concurrent(url, body, args.clients, args.seconds))
    return {"sequential": seq, f"concurrent_{args.clients}": conc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-wait-s", type=float, default=0.0005)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    from serving.ingress import DirectIngress, direct_urls

    ingress = DirectIngress()
    ingress.enable()  # before Ray starts

    import ray
    from ray import serve

    from serving.auth import digest

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    model_path = args.model_path
    if model_path is None:
        from rl.config import TrainConfig
        from rl.train import train

        tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
        config = TrainConfig.model_validate(TINY_TRAIN)
        model_path = str(train(config, tmp / "policy").run_dir)
    body = {"observation": _observation()}

    from serving.app import build_app

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    options = {"max_batch_size": args.max_batch_size, "batch_wait_s": args.batch_wait_s,
               "replicas": args.replicas,
               "signals_per_minute": 0}  # one key, full speed: the quota is not measured
    app = build_app({"model_path": model_path, "key_digests": [digest(KEY)], **options})
    serve.run(app, name="quantum", route_prefix="/")
    serve_url = f"http://127.0.0.1:{port}"
    _wait(serve_url)
    served = _measure(serve_url, body, args)
    direct_url = next(iter(direct_urls("127.0.0.1", ingress)), None)
    if direct_url:
        _wait(direct_url)
    direct = _measure(direct_url, body, args) if direct_url else None
    serve.shutdown()
    ray.shutdown()

    bare_port = _free_port()
    bare = subprocess.Popen([sys.executable, "-m", "serving.bare", "--model-path", model_path,
                             "--port", str(bare_port)])
    try:
        bare_url = f"http://127.0.0.1:{bare_port}"
        _wait(bare_url)
        bared = _measure(bare_url, body, args)
    finally:
        bare.terminate()
        bare.wait(30)
    key = f"concurrent_{args.clients}"
    out = {
        "serve_p50_ms": served["sequential"]["p50_ms"],
        "serve_p99_ms": served["sequential"]["p99_ms"],
        f"serve_rps_{args.clients}": served[key]["rps"],
        f"bare_rps_{args.clients}": bared[key]["rps"],
        "bare_p50_ms": bared["sequential"]["p50_ms"],
        "serve_vs_bare_throughput": round(served[key]["rps"] / bared[key]["rps"], 2),
        "serve_direct_p50_ms": direct["sequential"]["p50_ms"] if direct else None,
        "serve_direct_p99_ms": direct["sequential"]["p99_ms"] if direct else None,
        f"serve_direct_rps_{args.clients}": direct[key]["rps"] if direct else None,
        "serve": served,
        "serve_direct": direct,
        "bare": bared,
        "model": model_path,
        "max_batch_size": args.max_batch_size,
        "batch_wait_s": args.batch_wait_s,
        "replicas": args.replicas,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out))  # noqa: T201


if __name__ == "__main__":
    main()
