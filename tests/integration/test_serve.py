"""The Serve application over real HTTP: signals, auth, bad input, backtest jobs, model swap."""

import json
import math
import threading
import time

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from rl.checkpoint import load_module
from tests.integration import serving_fixtures as sf

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PENDING = ("queued", "running")


@pytest.fixture(scope="module")
def served(policy_runs, tmp_path_factory):
    from ray import serve

    root = tmp_path_factory.mktemp("serve")
    app = sf.start(policy_runs, root / "results")
    yield app
    serve.shutdown()


def test_health_needs_no_key_and_everything_else_does(served):
    with served.client(key=None) as anonymous, served.client(key="wrong-key-0123456789") as wrong:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").status_code == 200
        for response in (anonymous.get("/v1/models"), wrong.get("/v1/models"),
                         anonymous.post("/v1/signals", json={})):
            assert response.status_code == 401
            assert response.json()["code"] == "unauthorized"
        assert anonymous.get("/openapi.json").status_code == 200


def test_models_describe_the_served_checkpoint(served):
    with served.client() as client:
        (model,) = client.get("/v1/models").json()

    assert model["assets"] == ["BTC", "ETH", "SOL"]
    assert model["observation"]["market"][1:] == [3, 12]
    assert model["min_bars"] > model["observation"]["market"][0]
    assert model["id"].startswith(served.runs[0].name)


def test_signal_from_an_observation_is_the_module_decision(served):
    (obs,) = sf.observation_json(seed=3)
    module = load_module(served.runs[0] / "checkpoints" / "final")
    batch = {Columns.OBS: {k: torch.tensor([v], dtype=torch.float32) for k, v in obs.items()}}
    with torch.no_grad():
        expected = module.forward_inference(batch)[Columns.ACTIONS]

    with served.client() as client:
        response = client.post("/v1/signals", json={"observation": obs})

    assert response.status_code == 200, response.text
    body = response.json()
    decisions = [s["decision"] for s in body["signals"]]
    assert decisions == [("short", "flat", "long")[int(t)] for t in expected["trade"][0]]
    for signal, size in zip(body["signals"], expected["size"][0], strict=True):
        assert signal["size"] == pytest.approx(float(size), abs=1e-6)
        assert sum(signal["probabilities"]["trade"].values()) == pytest.approx(1.0, abs=1e-5)
        assert set(signal["attention"]) == {"BTC", "ETH", "SOL"}
    assert math.isfinite(body["value"]) and body["data_timestamp"] is None


def test_a_live_sessions_account_is_served_and_its_status_reported(served):
    """A paper session of the served run: /v1/live/{id} shows its status, and a signal
    for its account (by account_id) is the module's action on the env's observation of
    that account (the session's own observation code)."""
    from backtest.risk_view import account_risk_report
    from envs.account import Account
    from envs.registry import aligned_for
    from live.feed import arrays_upto
    from live.run import replay_session
    from live.session import status_of
    from rl.checkpoint import TrainedRun

    trained = TrainedRun.open(served.runs[0])
    replay = replay_session(served.live / "paper-1", served.runs[0], trained.market)
    state = replay.run()
    frame = aligned_for(trained.market.keys())
    account = Account.from_dict(state["account"])
    bar = int(np.searchsorted(frame.index.asi8, account.bar_time))
    data = arrays_upto(frame, bar)
    obs = account.observe(data, trained.env)
    with torch.no_grad():
        expected = trained.module.act({k: torch.from_numpy(v) for k, v in obs.items()}, True)
    ms = frame.index.as_unit("ms").asi8
    bars = {
        asset: [
            {"timestamp": int(ms[i]), **{f: float(frame[(asset, f)].iloc[i])
                                         for f in ("open", "high", "low", "close", "volume",
                                                   "mark")},
             "funding_rate": float(frame[(asset, "funding_rate")].iloc[i])
             if frame[(asset, "funding_event")].iloc[i] else None}
            for i in range(bar + 1)
        ]
        for asset in data.assets
    }

    with served.client() as client:
        status = client.get("/v1/live/paper-1").json()
        (model,) = client.get("/v1/models").json()
        by_id = client.post("/v1/signals", json={"bars": bars, "account_id": "paper-1"})
        risk = client.post("/v1/risk", json={"bars": bars, "account_id": "paper-1"})
        flat_risk = client.post("/v1/risk", json={"bars": bars})
        by_value = client.post("/v1/signals", json={"bars": bars, "account": state["account"]})
        escape = client.get("/v1/live/..%2F..%2Fetc")
        hidden = client.get("/v1/live/..")
        unknown = client.post("/v1/signals", json={"bars": bars, "account_id": "nope"})
        both = client.post("/v1/signals", json={"bars": bars, "account_id": "paper-1",
                                                "portfolio": {"positions": {}}})

    assert status == {**json.loads(json.dumps(status_of(state))), "task": None}
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["signals"] == by_value.json()["signals"]
    got = by_id.json()["signals"]
    np.testing.assert_array_equal([s["decision"] for s in got],
                                  [("short", "flat", "long")[d]
                                   for d in expected.actions["trade"][0].tolist()])
    np.testing.assert_allclose([s["size"] for s in got], expected.actions["size"][0].numpy())
    assert model["shield"]["enabled"] and model["shield"]["max_var"] == 0.02
    notional, shield = account.targets(data, trained.env, expected.actions["trade"][0].numpy(),
                                       [s["size"] for s in got])
    np.testing.assert_allclose([s["target_notional"] for s in got], notional, rtol=1e-9)
    assert [s["shield"] for s in got] == [shield[a] for a in data.assets]
    assert risk.status_code == 200, risk.text
    assert risk.json()["data_timestamp"] == frame.index[bar].isoformat()
    report = risk.json()["report"]
    local = account_risk_report(account, data, trained.env)
    assert report["equity"] == pytest.approx(state["account"]["values"]["equity"])
    assert report["maintenance_margin"] == pytest.approx(local["maintenance_margin"])
    assert {r["scenario"] for r in report["stress"]} == {r["scenario"] for r in local["stress"]}
    assert local["var"] and [r["var"] for r in report["var"]] == pytest.approx(
        [r["var"] for r in local["var"]])
    assert flat_risk.status_code == 200 and flat_risk.json()["report"]["gross_exposure"] == 0.0
    assert escape.status_code in (404, 422) and "etc" not in escape.text
    assert hidden.status_code in (404, 422) and str(served.live) not in hidden.text
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_session"
    assert both.status_code == 422


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"observation": {"market": [[[1.0]]], "risk": [[0.0]], "portfolio": [[0.0]]}}, 400,
         "bad_shape"),
        ({"observation": {"market": "x", "risk": [], "portfolio": []}}, 422, "invalid_request"),
        ({}, 422, "invalid_request"),
        ({"bars": {"BTC": []}, "observation": None, "extra": 1}, 422, "invalid_request"),
        ({"bars": {"DOGE": [{"timestamp": 0, "open": 1, "high": 1, "low": 1, "close": 1,
                             "volume": 1}]}}, 400, None),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_the_service_keeps_serving(served, body, status, code):
    (obs,) = sf.observation_json()
    with served.client() as client:
        response = client.post("/v1/signals", json=body)
        after = client.post("/v1/signals", json={"observation": obs})

    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"code", "message", "details"}
    if code:
        assert error["code"] == code
    assert after.status_code == 200


def test_nan_oversized_and_unknown_model_are_refused(served):
    (obs,) = sf.observation_json()
    obs_nan = json.loads(json.dumps(obs))
    obs_nan["market"][0][0][0] = float("nan")
    with served.client() as client:
        nan = client.post("/v1/signals", content=json.dumps({"observation": obs_nan}),
                          headers={"content-type": "application/json"})
        huge = client.post("/v1/signals", content=b"{" + b" " * (9 * 1024 * 1024) + b"}",
                           headers={"content-type": "application/json"})
        unknown = client.post("/v1/signals", json={"observation": obs, "model": "nope"})

    assert nan.status_code == 422 and nan.json()["code"] == "invalid_request"
    assert huge.status_code == 413 and huge.json()["code"] == "payload_too_large"
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_model"


def test_backtest_jobs_run_off_the_request_path(served, tmp_path):
    (obs,) = sf.observation_json()
    with served.client() as client:
        job = client.post("/v1/backtests", json={"synthetic_seed": 5, "synthetic_days": 3,
                                                 "last_days": 0.5}).json()
        latencies = []
        while (status := client.get(f"/v1/backtests/{job['id']}").json())["status"] in PENDING:
            start = time.perf_counter()
            assert client.post("/v1/signals", json={"observation": obs}).status_code == 200
            latencies.append(time.perf_counter() - start)
            time.sleep(0.2)
        missing = client.get("/v1/backtests/nope")

    assert status["status"] == "succeeded", status
    assert 0 < status["metrics"]["n_steps"] <= 720  # half a day of minute bars (or less:
    # an untrained policy may hit the drawdown limit, which ends a backtest early)
    assert set(status["baselines"]) == {"flat", "buy_and_hold"}
    assert served.url and status["report"].endswith("report.html")
    assert latencies and max(latencies) < 2.0  # signals kept flowing during the backtest
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_job"


def _finished(client, job: dict) -> dict:
    while (status := client.get(f"/v1/backtests/{job['id']}").json())["status"] in PENDING:
        time.sleep(0.2)
    return status


def test_a_backtest_on_the_models_own_training_span_is_refused_unless_allowed(served):
    span = {"start": "2024-01-02T06:00", "end": "2024-01-02T12:00", "baselines": []}
    with served.client() as client:
        refused = _finished(client, client.post("/v1/backtests", json=span).json())
        allowed = _finished(
            client, client.post("/v1/backtests", json={**span, "allow_in_sample": True}).json()
        )
        held_out = _finished(client, client.post("/v1/backtests", json={"baselines": []}).json())

    assert refused["status"] == "failed"
    assert "InSampleError" in refused["error"] and "2024-01-02T06:00" in refused["error"]
    assert "train" in refused["error"]
    assert allowed["status"] == "succeeded" and allowed["sample"].startswith("IN SAMPLE")
    assert held_out["status"] == "succeeded", held_out
    assert held_out["sample"].startswith("out of sample")


def test_swapping_the_checkpoint_drops_no_request(served):
    from ray import serve

    from serving.app import build_app

    (obs,) = sf.observation_json()
    ids, errors, stop = [], [], threading.Event()

    def hammer():
        with served.client() as client:
            while not stop.is_set():
                response = client.post("/v1/signals", json={"observation": obs})
                if response.status_code == 200:
                    ids.append(response.json()["model_id"])
                else:
                    errors.append(response.status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    app = build_app(sf.app_args(served.runs[1], served.results))
    serve.run(app, name="quantum", route_prefix="/")
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join()

    assert errors == []
    old, new = served.runs[0].name, served.runs[1].name
    assert ids[0].startswith(old) and ids[-1].startswith(new)
    first_new = next(i for i, m in enumerate(ids) if m.startswith(new))
    # after the swap only requests already in flight (one per client) finish on the old model
    assert sum(m.startswith(old) for m in ids[first_new:]) <= len(threads)
    assert np.mean([i.startswith(new) for i in ids]) > 0.2


def test_the_service_runs_a_paper_session_on_the_cluster(served):
    """POST /v1/live starts a replay of the served model as a Ray task; its status comes
    from the session folder, and it ends as the same replay run in process ends."""
    from live.run import replay_session
    from rl.checkpoint import TrainedRun

    with served.client() as client:
        started = client.post("/v1/live", json={"session_id": "hosted-1"})
        again = client.post("/v1/live", json={"session_id": "hosted-1"})
        bad = client.post("/v1/live", json={"session_id": "../escape"})
        deadline = time.monotonic() + 300
        status = {}
        while time.monotonic() < deadline:
            response = client.get("/v1/live/hosted-1")
            if response.status_code == 200:
                status = response.json()
                if status["task"] is not None:
                    break
            time.sleep(1.0)
        served_name = client.get("/v1/models").json()[0]["checkpoint"]

    assert started.status_code == 202 and started.json()["status"] == "starting"
    assert again.status_code in (202, 409)
    assert bad.status_code == 422
    assert status["task"] == {"ended": True} and status["status"] == "finished"
    served_model = next(run for run in served.runs if run.name == served_name)
    trained = TrainedRun.open(served_model)
    local = replay_session(served.live / "local-1", served_model, trained.market).run()
    assert status["equity"] == local["account"]["values"]["equity"]
    assert status["steps"] == local["steps_done"]
