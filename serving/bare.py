"""The same policy behind a bare FastAPI + uvicorn app (no Serve): the benchmark's
reference for Serve's overhead. One process, one forward pass per request.

    python -m serving.bare --model-path runs/first --port 8001
"""

from __future__ import annotations

import argparse
import asyncio

from fastapi import FastAPI

from serving.inference import LoadedPolicy
from serving.observation import observation_from_arrays
from serving.schemas import SignalRequest, SignalResponse


def make_app(model_path: str) -> FastAPI:
    policy = LoadedPolicy.load(model_path)
    app = FastAPI(title="Quantum (bare)")
    lock = asyncio.Lock()

    @app.post("/v1/signals", response_model=SignalResponse)
    async def signals(body: SignalRequest) -> dict:
        obs = observation_from_arrays(body.observation, policy.spec)
        async with lock:
            result = policy.forward(obs)[0]
        result["data_timestamp"] = None
        return result

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(make_app(args.model_path), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
