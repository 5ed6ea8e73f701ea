"""A policy trained with the news text channel, served over HTTP: headlines sent with
the bars reach the policy as they would in training, a ready text part is accepted, and
malformed headlines are refused without taking the service down."""

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from envs.core.layout import M_CLOSE
from envs.registry import aligned_for, market_for
from news.source import NewsConfig, headlines_for
from rl.checkpoint import load_module
from rl.train import train
from serving.bars import bars_from_frame
from serving.inference import LoadedPolicy
from serving.observation import observation_from_bars
from tests.integration import serving_fixtures as sf
from tests.integration.configs import TINY_ENV, tiny

pytestmark = [pytest.mark.slow, pytest.mark.integration]
NEWS = {"text": True, "synthetic": {"seed": 3, "move_quantile": 0.9, "min_gap_bars": 60}}


@pytest.fixture(scope="module")
def served(ray_local, tmp_path_factory):
    from ray import serve

    root = tmp_path_factory.mktemp("serve_news")
    run = train(tiny(seed=13, steps=256, **{"env_config.news": NEWS}), root / "news").run_dir
    app = sf.start((run, run), root / "results")
    yield app
    serve.shutdown()


@pytest.fixture(scope="module")
def request_parts():
    """The tiny market's last bars and every headline of its synthetic stream."""
    market = {**TINY_ENV, "news": NEWS}
    data = market_for(market)
    frame = aligned_for(market)
    headlines = headlines_for(NewsConfig.model_validate(NEWS), data.timestamps,
                              data.mkt[:, :, M_CLOSE], data.assets)
    news = [{"title": r.title, "summary": r.summary, "first_seen": r.first_seen.isoformat(),
             "assets": list(r.assets)} for r in headlines.itertuples()]
    return bars_from_frame(frame.iloc[-1600:]), news


def _decision(run, bars, news):
    """The module's own decision and value on the observation the service should build."""
    policy = LoadedPolicy.load(run)
    obs, _ = observation_from_bars(bars, policy.spec, news=news)
    module = load_module(run / "checkpoints" / "final")
    with torch.no_grad():
        out = module.forward_inference({Columns.OBS: {k: torch.from_numpy(v)
                                                      for k, v in obs.items()}})
    return out[Columns.ACTIONS]["trade"][0].tolist(), obs


def test_headlines_with_bars_reach_the_policy_as_in_training(served, request_parts):
    bars, news = request_parts
    trade, obs = _decision(served.runs[0], bars, news)
    assert (obs["text"][0, :, 385] > 0).any()  # the slots hold recent headlines

    with served.client() as client:
        (model,) = client.get("/v1/models").json()
        with_news = client.post("/v1/signals", json={"bars": bars, "news": news})
        without = client.post("/v1/signals", json={"bars": bars})
        ready = client.post("/v1/signals", json={"observation": {
            k: np.asarray(v[0], dtype=float).tolist() for k, v in obs.items()}})

    assert model["observation"]["text"] == [8, 384 + 2 + 3]
    assert with_news.status_code == 200, with_news.text
    body = with_news.json()
    assert [s["decision"] for s in body["signals"]] == [
        ("short", "flat", "long")[int(t)] for t in trade]
    assert without.status_code == 200 and ready.status_code == 200, (without.text, ready.text)
    assert ready.json()["value"] == pytest.approx(body["value"], abs=1e-5)
    assert without.json()["value"] != pytest.approx(body["value"], abs=1e-6)  # news matters


@pytest.mark.parametrize("headline, field", [
    ({"title": "Bitcoin rallies", "first_seen": "2024-01-04T10:00:00"}, "first_seen"),
    ({"title": "", "first_seen": "2024-01-04T10:00:00Z"}, "title"),
    ({"title": "x", "first_seen": "not a time"}, "first_seen"),
    ({"title": "x", "first_seen": "2024-01-04T10:00:00Z", "assets": "BTC"}, "assets"),
])
def test_malformed_headlines_are_refused_and_the_service_keeps_serving(
        served, request_parts, headline, field):
    bars, news = request_parts
    with served.client() as client:
        bad = client.post("/v1/signals", json={"bars": bars, "news": [headline]})
        alone = client.post("/v1/signals", json={"observation": None, "news": news[:1],
                                                 "bars": None})
        fine = client.get("/healthz")

    assert bad.status_code == 422 and field in bad.text, bad.text
    assert alone.status_code == 422
    assert fine.status_code == 200


def test_loading_and_querying_a_policy_leaves_the_process_able_to_train(served, request_parts):
    """A policy loaded in a process that also trains (a notebook, this test session) must not
    switch autograd off for it: serving once did, and every later PPO update failed."""
    bars, news = request_parts
    policy = LoadedPolicy.load(served.runs[0])
    obs, _ = observation_from_bars(bars, policy.spec, news=news)
    (result,) = policy.forward(obs)
    assert torch.is_grad_enabled()
    assert result["signals"] and np.isfinite(result["value"])
    weight = torch.ones(2, requires_grad=True)
    (weight * 3.0).sum().backward()
    assert weight.grad.tolist() == [3.0, 3.0]
