"""Serve under stress, over real HTTP: a schema fuzz run finds no 5xx, a load run of
concurrent clients has no errors, and a killed replica is replaced with a bounded blip."""

import json
import statistics
import threading
import time

import pytest
import ray
import schemathesis

from serving.auth import API_KEY_HEADER
from tests.integration import serving_fixtures as sf

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def served(policy_runs, tmp_path_factory):
    from ray import serve

    root = tmp_path_factory.mktemp("serve_reliability")
    app = sf.start(policy_runs, root / "results")
    yield app
    serve.shutdown()


def test_fuzzing_the_openapi_schema_finds_no_server_error(served):
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    headers = {API_KEY_HEADER: sf.API_KEY}
    failures: list[str] = []
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/v1/backtests" and operation.method.upper() == "POST":
            continue  # starts real backtests; its validation is covered by the 4xx cases
        checked += sf.fuzz_operation(served.url, operation, headers, failures, 40)

    assert checked >= 100
    assert failures == []
    with served.client() as client:  # and it still serves
        (obs,) = sf.observation_json()
        assert client.post("/v1/signals", json={"observation": obs}).status_code == 200


def _load(served, clients: int, seconds: float, body: dict) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    errors: list[int] = []
    deadline = time.monotonic() + seconds

    def worker():
        with served.client() as client:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    status = client.post("/v1/signals", json=body).status_code
                except Exception:
                    status = -1
                (latencies.append(time.perf_counter() - start) if status == 200
                 else errors.append(status))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors


def test_a_load_run_of_concurrent_clients_has_no_errors(served, tmp_path):
    (obs,) = sf.observation_json()

    latencies, errors = _load(served, clients=8, seconds=8.0, body={"observation": obs})

    assert errors == []
    assert len(latencies) > 100
    q = statistics.quantiles(latencies, n=100)
    record = {"requests": len(latencies), "p50_ms": q[49] * 1e3, "p95_ms": q[94] * 1e3,
              "p99_ms": q[98] * 1e3}
    (tmp_path / "load.json").write_text(json.dumps(record))
    print(f"load run: {json.dumps(record)}")
    assert record["p99_ms"] < 2_000


def test_a_killed_policy_replica_is_replaced_and_errors_stop(served):
    from ray import serve

    (obs,) = sf.observation_json()
    body = {"observation": obs}
    status = serve.status().applications["quantum"].deployments["Gateway"]
    assert status.status == "HEALTHY"
    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                if "Gateway" in a["name"]]
    assert len(replicas) == 1
    victim = ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"])

    results: list[tuple[float, int]] = []
    stop = threading.Event()

    def hammer():
        with served.client(timeout=10) as client:
            while not stop.is_set():
                try:
                    code = client.post("/v1/signals", json=body).status_code
                except Exception:
                    code = -1
                results.append((time.monotonic(), code))
                time.sleep(0.02)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    killed_at = time.monotonic()
    ray.kill(victim, no_restart=True)
    recovered = None
    while time.monotonic() - killed_at < 90:
        recent = [c for t, c in results if t > time.monotonic() - 2.0]
        if recent and all(c == 200 for c in recent) and time.monotonic() - killed_at > 3:
            recovered = time.monotonic()
            break
        time.sleep(0.5)
    time.sleep(3.0)  # and it stays healthy
    stop.set()
    for t in threads:
        t.join()

    assert recovered is not None, "the service did not recover within 90 s"
    errors = [c for _, c in results if c != 200]
    print(
        f"replica kill: {len(errors)} failed of {len(results)} requests, "
        f"recovered {recovered - killed_at:.1f} s after the kill"
    )
    after = [c for t, c in results if t > recovered]
    assert len(errors) <= 200  # bounded: the requests in flight and during the restart
    assert after and all(c == 200 for c in after)
