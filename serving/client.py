"""A small Python client for the HTTP API.

    from serving.client import QuantumClient
    client = QuantumClient("http://127.0.0.1:8000", api_key="...")
    client.signal(bars={"BTC": [...], "ETH": [...], "SOL": [...]})

Errors come back as ``ApiError`` with the service's machine-readable code.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from serving.auth import API_KEY_HEADER


class ApiError(RuntimeError):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(f"{status} {body.get('code')}: {body.get('message')}")
        self.status = status
        self.code = body.get("code")
        self.body = body


class QuantumClient:
    """Synchronous client (httpx); one connection pool per client."""

    def __init__(self, url: str, api_key: str, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers={API_KEY_HEADER: api_key}, timeout=timeout
        )

    def _call(self, method: str, path: str, **kwargs) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"code": "http_error", "message": response.text[:500]}
            raise ApiError(response.status_code, body)
        return response.json()

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the service was not ready within {timeout:.0f} s")
            time.sleep(0.5)

    def models(self) -> list[dict]:
        return self._call("GET", "/v1/models")

    def signal(self, *, bars: dict | None = None, observation: dict | None = None,
               portfolio: dict | None = None) -> dict:
        body = {"bars": bars, "observation": observation, "portfolio": portfolio}
        return self._call("POST", "/v1/signals", json={k: v for k, v in body.items() if v})

    def start_backtest(self, **request) -> dict:
        return self._call("POST", "/v1/backtests", json=request)

    def backtest(self, job_id: str) -> dict:
        return self._call("GET", f"/v1/backtests/{job_id}")

    def wait_backtest(self, job_id: str, timeout: float = 600.0) -> dict:
        deadline = time.monotonic() + timeout
        while (job := self.backtest(job_id))["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"backtest {job_id} still {job['status']} after {timeout} s")
            time.sleep(1.0)
        return job

    def close(self) -> None:
        self._http.close()
