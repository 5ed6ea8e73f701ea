"""The service's security over real HTTP: scoped keys on every route, paths confined to the
service's roots, per-key quotas, a job queue that survives its replica, the audit log, key
management and model swap by admins, and a schema fuzz run with a key of each scope."""

import json
import shutil
import time

import httpx
import pytest
import ray
import schemathesis

from serving.auth import API_KEY_HEADER, SCOPES, KeyFile
from serving.guard import ROUTES
from serving.jobs import LOST
from tests.integration import serving_fixtures as sf

pytestmark = [pytest.mark.slow, pytest.mark.integration]
WRONG = "qk_000000000000_" + "A" * 43
PENDING = ("queued", "running")


@pytest.fixture(scope="module")
def secure(policy_runs, tmp_path_factory):
    from ray import serve

    from market.cli import synth

    root = tmp_path_factory.mktemp("secure")
    state = root / "state"
    keys = KeyFile(state / "keys.json")
    scoped = {scope: keys.add(scope, scope)[1] for scope in SCOPES}
    scoped["rate"] = keys.add("rate", "read")[1]
    scoped["backtest2"] = keys.add("backtest2", "backtest")[1]
    old, scoped["revoked"] = keys.add("old", "read")
    keys.revoke(old.id)
    data, models, outside = root / "data", root / "models", root / "outside"
    synth(out=data / "market", assets="BTC,ETH,SOL", days=3, seed=4)
    outside.mkdir()
    (outside / "private.txt").write_text("not for clients")
    (data / "escape").symlink_to(outside)
    models.mkdir()
    for run in policy_runs:
        shutil.copytree(run, models / run.name)
    (models / "escape").symlink_to(policy_runs[0])  # a real run, but outside the root
    app = sf.start(policy_runs, root / "results", key_file=str(keys.path), state_dir=str(state),
                   data_root=str(data), model_root=str(models), legacy_scopes=["read"],
                   signals_per_minute=30, signals_burst=4, backtests_running_per_key=1,
                   backtests_queued_per_key=1)
    yield app, scoped, root
    serve.shutdown()


def _client(app, key: str | None) -> httpx.Client:
    return app.client(key=key)


def _call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    """A request that can change nothing once authorised: bodies fail validation, ids are
    unknown."""
    path = path.format(session_id="nobody", job_id="nojob", key_id="nokey")
    body = {"not_a_field": 1} if method in ("POST", "PUT") else None
    return client.request(method, path, json=body)


def _audit(root) -> list[dict]:
    return [json.loads(line) for line in (root / "state" / "audit.jsonl").read_text()
            .splitlines()]


def test_each_route_answers_each_key_by_its_scope(secure):
    app, keys, root = secure
    outcomes = {}
    for route in ROUTES:
        for holder in ("none", "wrong", "revoked", *SCOPES):
            key = {"none": None, "wrong": WRONG}.get(holder, keys.get(holder))
            with _client(app, key) as client:
                response = _call(client, route.method, route.path)
            outcomes[(route.method, route.path, holder)] = response
            if holder in ("none", "wrong", "revoked"):
                assert response.status_code == 401, (route, holder, response.text)
            elif holder == route.scope:
                assert response.status_code not in (401, 403), (route, holder, response.text)
            else:
                assert response.status_code == 403, (route, holder, response.text)
                assert response.json()["details"] == [{"missing_scope": route.scope}]
                assert repr(route.scope) in response.json()["message"]
    with _client(app, sf.API_KEY) as client:  # a plain key has QUANTUM_API_KEY_SCOPES' scopes
        assert client.get("/v1/models").status_code == 200
        assert client.post("/v1/live", json={"session_id": "x"}).status_code == 403
    with _client(app, keys["read"]) as client:
        assert client.get("/healthz").status_code == 200
    audited = {f"{r.method} {r.path}" for r in ROUTES if r.audited}
    lines = _audit(root)
    assert {line["route"] for line in lines} == audited
    refused = [line for line in lines if line["status"] == 401]
    assert refused and all(line["key_id"] is None for line in refused)
    forbidden = [line for line in lines if line["status"] == 403]
    assert forbidden
    assert all(line["outcome"] == "forbidden" and line["key_id"] for line in forbidden)
    text = (root / "state" / "audit.jsonl").read_text()
    assert not any(secret in text for secret in keys.values())


@pytest.mark.parametrize("name", ["../outside", "market/../../outside", "/etc", "escape",
                                  "escape/private.txt", "%2e%2e%2foutside", "..\\outside",
                                  "~/market", "market/./x", "nothing"])
def test_stores_outside_the_data_root_are_refused_without_server_paths(secure, name):
    app, keys, root = secure
    with _client(app, keys["backtest"]) as client:
        response = client.post("/v1/backtests", json={"data": name, "baselines": []})
    assert response.status_code in (404, 422), response.text
    assert str(root) not in response.text and "/tmp" not in response.text
    assert response.json()["code"] in ("unknown_store", "invalid_request")


def test_models_outside_the_model_root_and_session_ids_with_paths_are_refused(secure):
    app, keys, root = secure
    with _client(app, keys["admin"]) as client:
        swaps = [client.put("/v1/models", json={"model": name})
                 for name in ("../secure", "escape", "/etc", str(root / "models" / "policy_12"),
                              "policy_11/../../outside")]
    with _client(app, keys["read"]) as client:
        ids = [client.get(f"/v1/live/{name}") for name in
               ("..%2F..%2Fetc", "%2e%2e", "..", "a%00b", "x" * 300)]
        model = client.get("/v1/models").json()[0]
    assert [r.status_code for r in swaps] == [422, 404, 422, 422, 422]
    assert all(r.status_code in (404, 422) for r in ids), [r.text for r in ids]
    for response in swaps + ids:
        assert str(root) not in response.text and "/tmp" not in response.text
    assert model["checkpoint"] == "policy_11" and "/" not in model["checkpoint"]


def test_signal_quota_is_per_key_with_retry_after(secure):
    app, keys, _ = secure
    (obs,) = sf.observation_json()
    with _client(app, keys["rate"]) as client:
        codes = [client.post("/v1/signals", json={"observation": obs}) for _ in range(12)]
    with _client(app, keys["read"]) as client:
        other = client.post("/v1/signals", json={"observation": obs})

    limited = [r for r in codes if r.status_code == 429]
    assert [r.status_code for r in codes[:4]] == [200] * 4  # the burst
    assert len(limited) >= 6
    assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert limited[0].json()["code"] == "rate_limited"
    assert other.status_code == 200


def _runner_actor():
    (name,) = [a for a in ray.util.list_named_actors(all_namespaces=True)
               if "BacktestRunner" in a["name"]]
    return ray.get_actor(name["name"], namespace=name["namespace"])


def _wait_job(client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/v1/backtests/{job_id}")
        if response.status_code == 200 and response.json()["status"] not in PENDING:
            return response.json()
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end: {response.text}")


def test_backtest_quotas_and_a_queue_that_survives_its_replica(secure):
    app, keys, root = secure
    with _client(app, keys["backtest"]) as client:
        running = client.post("/v1/backtests", json={"data": "market", "baselines": [],
                                                     "last_days": 0.5}).json()
        queued = client.post("/v1/backtests", json={"synthetic_seed": 5, "synthetic_days": 3,
                                                    "last_days": 0.25, "baselines": []}).json()
        over = client.post("/v1/backtests", json={"synthetic_seed": 4, "baselines": []})
        assert running["status"] == "running" and queued["status"] == "queued"
        assert queued["position"] == 0
        with _client(app, keys["backtest2"]) as other:
            hidden = other.get(f"/v1/backtests/{running['id']}")

        ray.kill(_runner_actor(), no_restart=True)  # Serve replaces the replica
        lost = _wait_job(client, running["id"])
        after = _wait_job(client, queued["id"])

    assert over.status_code == 429 and over.json()["code"] == "quota_exceeded"
    assert int(over.headers["Retry-After"]) > 0
    assert hidden.status_code == 404  # another key's job is not found, not forbidden
    assert lost["status"] == "failed" and lost["error"] == LOST
    assert after["status"] == "succeeded", after.get("error")
    assert after["report"] == f"{queued['id']}/report.html"
    assert str(root) not in json.dumps(after)
    submitted = [line for line in _audit(root)
                 if line["route"] == "POST /v1/backtests" and line["status"] == 202]
    assert {line["id"] for line in submitted} >= {running["id"], queued["id"]}
    assert any(line["params"].get("data") == "market" for line in submitted)


def test_admins_manage_keys_over_http_and_every_change_is_audited(secure):
    app, keys, root = secure
    with _client(app, keys["admin"]) as admin:
        made = admin.post("/v1/admin/keys", json={"name": "ci", "scopes": ["read"]})
        secret = made.json()["secret"]
        with _client(app, secret) as fresh:
            before = fresh.get("/v1/models").status_code
            forbidden = fresh.post("/v1/live", json={"session_id": "x"}).status_code
            listed = admin.get("/v1/admin/keys").json()
            revoked = admin.delete(f"/v1/admin/keys/{made.json()['id']}")
            after = fresh.get("/v1/models").status_code
        bad = admin.post("/v1/admin/keys", json={"name": "x", "scopes": ["root"]})

    assert made.status_code == 201 and secret.startswith("qk_")
    assert (before, forbidden, after) == (200, 403, 401)
    assert revoked.status_code == 200 and revoked.json()["revoked"]
    assert all("secret" not in k and "digest" not in k for k in listed)
    assert bad.status_code == 422
    lines = _audit(root)
    changes = [line for line in lines if line["route"].startswith(("POST /v1/admin",
                                                                   "DELETE /v1/admin"))
               and line["status"] < 300]
    admin_id = KeyFile(root / "state" / "keys.json").ring().authenticate(keys["admin"]).key_id
    assert [(c["route"], c["id"], c["key_id"]) for c in changes[-2:]] == [
        ("POST /v1/admin/keys", made.json()["id"], admin_id),
        ("DELETE /v1/admin/keys/{key_id}", made.json()["id"], admin_id)]
    assert changes[-2]["params"] == {"name": "ci", "scopes": ["read"]}
    assert secret not in (root / "state" / "audit.jsonl").read_text()


def test_an_admin_swaps_the_model_and_a_restarted_replica_keeps_it(secure):
    app, keys, root = secure
    with _client(app, keys["admin"]) as admin:
        swapped = admin.put("/v1/models", json={"model": "policy_12"})
    (gateway,) = [a for a in ray.util.list_named_actors(all_namespaces=True)
                  if "Gateway" in a["name"]]
    ray.kill(ray.get_actor(gateway["name"], namespace=gateway["namespace"]), no_restart=True)
    deadline, model = time.monotonic() + 120, None
    while time.monotonic() < deadline:
        try:
            with _client(app, keys["read"]) as client:
                response = client.get("/v1/models")
            if response.status_code == 200:
                model = response.json()[0]
                break
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    with _client(app, keys["admin"]) as admin:
        back = admin.put("/v1/models", json={"model": "policy_11"})

    assert swapped.status_code == 200 and swapped.json()["checkpoint"] == "policy_12"
    assert model is not None and model["checkpoint"] == "policy_12"
    assert model["id"].startswith("policy_12")
    assert back.status_code == 200 and back.json()["checkpoint"] == "policy_11"
    swaps = [line for line in _audit(root) if line["route"] == "PUT /v1/models"]
    assert [s["params"]["model"] for s in swaps[-2:]] == ["policy_12", "policy_11"]


def test_fuzzing_every_route_with_a_key_of_each_scope_finds_no_server_error(secure):
    app, keys, root = secure
    schema = schemathesis.openapi.from_url(f"{app.url}/openapi.json")
    failures: list[str] = []
    checked = 0
    for scope in SCOPES:
        for result in schema.get_all_operations():
            operation = result.ok()
            route = f"{operation.method.upper()} {operation.path}"
            if scope in ("backtest", "trade") and route in ("POST /v1/backtests", "POST /v1/live"):
                continue  # would start real backtests and sessions; their 4xx are tested above
            checked += sf.fuzz_operation(app.url, operation, {API_KEY_HEADER: keys[scope]},
                                         failures, 8)

    assert checked >= 200
    assert failures == []
    lines = _audit(root)  # every line whole and parseable after the storm
    assert all(set(line) >= {"time", "key_id", "route", "params", "status", "outcome"}
               for line in lines)
    with _client(app, keys["read"]) as client:
        assert client.get("/v1/models").status_code == 200
