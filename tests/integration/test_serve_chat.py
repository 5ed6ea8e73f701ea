"""POST /v1/chat on the real Serve app over HTTP: a tiny chatbot model built here (base
model + LoRA adapter, llm.training), a briefly trained policy, and a market store that
keeps the chatbot's facts live (the live signal comes from the Gateway through a
handle). Nothing of our own stack is mocked."""

import json

import httpx
import numpy as np
import pandas as pd
import pytest

from serving.auth import API_KEY_HEADER, digest
from tests.integration import serving_fixtures as sf

pytestmark = [pytest.mark.slow, pytest.mark.integration]

RATE_KEY = "rate-key-0123456789abcdef"
BURST = 20


def _tiny_chatbot(root):
    from llm.corpus import CorpusConfig, build_corpus
    from llm.training import BaseModelConfig, LoraConfigSpec, build_base, finetune_lora

    corpus = build_corpus(CorpusConfig(days=4, snapshots=24, eval_snapshots=2, risk_reports=4))
    base = build_base(
        list(corpus.pretrain), root / "base",
        BaseModelConfig(vocab_size=512, hidden_size=64, num_layers=2, num_heads=2,
                        intermediate_size=128, steps=60, batch_size=8, seq_len=128),
    )
    return finetune_lora(base, list(corpus.pairs), root / "chatbot",
                         LoraConfigSpec(r=4, alpha=8, steps=30, batch_size=8))


@pytest.fixture(scope="module")
def chat_app(policy_runs, tmp_path_factory):
    from ray import serve

    from market.cli import synth
    from serving.app import build_app

    root = tmp_path_factory.mktemp("chat")
    synth(out=root / "data", assets="BTC,ETH,SOL", days=4, seed=3)
    chatbot = _tiny_chatbot(root)
    policy = policy_runs[0]
    port = sf.free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:  # a failed start must not leave Serve up on this port for the next module
        app = build_app({
            "model_path": str(policy), "key_digests": [digest(sf.API_KEY), digest(RATE_KEY)],
            "results_dir": str(root / "results"), "chat_model_path": str(chatbot),
            "data_path": str(root / "data"), "chat_per_minute": 0.6, "chat_burst": BURST,
        })
        serve.run(app, name="quantum", route_prefix="/")
        yield sf.Served(f"http://127.0.0.1:{port}", root / "results", (policy, policy)), root
    finally:
        serve.shutdown()


def _chat(client: httpx.Client, message: str, **extra) -> httpx.Response:
    return client.post("/v1/chat", json={"message": message, **extra})


def _fact(body: dict, key: str) -> dict:
    matches = [f for f in body["facts_used"] if f["key"] == key]
    assert matches, f"{key} not among {[f['key'] for f in body['facts_used']]}"
    return matches[0]


def test_price_answer_states_the_stored_last_close(chat_app):
    from serving.bars import recent_frame

    served, root = chat_app
    with served.client(timeout=120) as client:
        response = _chat(client, "What is the BTC price?")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] and body["conversation_id"] and body["model"] == "chatbot"
    last = recent_frame(root / "data", ["BTC"], 1)
    fact = _fact(body, "BTC.close")
    assert fact["value"] == pytest.approx(last["BTC"]["close"].iloc[-1])
    assert pd.Timestamp(fact["timestamp"]) == last.index[-1]
    assert fact["text"] in body["text"]  # the number in the answer is the fact's


def test_signal_answer_uses_the_served_policys_live_signal(chat_app):
    from serving.bars import recent_bars

    served, root = chat_app
    with served.client(timeout=120) as client:
        models = client.get("/v1/models").json()
        bars = recent_bars(root / "data", models[0]["assets"], models[0]["min_bars"])
        direct = client.post("/v1/signals", json={"bars": bars}).json()
        body = _chat(client, "What is the policy's signal for BTC?").json()

    assert body["signal_model"] == models[0]["id"]
    decision = _fact(body, "signal.BTC.decision")
    btc = next(s for s in direct["signals"] if s["asset"] == "BTC")
    assert decision["value"] == btc["decision"]
    assert decision["source"] == "signal"


def test_conversations_keep_their_own_recent_turns(chat_app):
    served, _ = chat_app
    with served.client(timeout=120) as client:
        first = _chat(client, "What is the ETH price?").json()
        second = _chat(client, "And its trend?", conversation_id=first["conversation_id"]).json()
        other = _chat(client, "What is the ETH price?", conversation_id="fresh-conversation").json()

    assert first["history_turns"] == 0
    assert second["conversation_id"] == first["conversation_id"] and second["history_turns"] == 1
    assert other["history_turns"] == 0


def test_streaming_sends_the_same_answer_as_server_sent_events(chat_app):
    served, _ = chat_app
    with served.client(timeout=120) as client:
        plain = _chat(client, "How volatile is SOL?", conversation_id="plain").json()
        with client.stream("POST", "/v1/chat", json={"message": "How volatile is SOL?",
                                                     "conversation_id": "streamed",
                                                     "stream": True}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [json.loads(line[len("data: "):]) for line in response.iter_lines()
                      if line.startswith("data: ")]

    deltas = [e["delta"] for e in events if "delta" in e]
    done = events[-1]["done"]
    assert len(deltas) > 1 and "".join(deltas) == done["text"]
    assert done["text"] == plain["text"] and done["conversation_id"] == "streamed"


@pytest.mark.parametrize(
    "body",
    [
        {"message": ""},
        {"message": "x" * 2001},
        {"message": "hi", "conversation_id": "bad id with spaces"},
        {"message": "hi", "temperature": 2},
        {"message": 42},
        {},
    ],
)
def test_bad_chat_requests_are_422_with_the_field_named(chat_app, body):
    served, _ = chat_app
    with served.client() as client:
        response = client.post("/v1/chat", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request" and response.json()["details"]


def test_chat_needs_a_key_and_limits_the_rate_per_key(chat_app):
    served, _ = chat_app
    with served.client(key=None) as anonymous:
        assert _chat(anonymous, "hi").status_code == 401

    with httpx.Client(base_url=served.url, headers={API_KEY_HEADER: RATE_KEY},
                      timeout=300) as client:
        statuses = [_chat(client, "What is the BTC price?").status_code for _ in range(BURST + 1)]
        limited = _chat(client, "What is the BTC price?")
    with served.client() as other:
        unaffected = _chat(other, "What is the BTC price?")

    assert statuses[:BURST] == [200] * BURST
    assert statuses[BURST] == 429 and limited.status_code == 429
    assert limited.json()["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    assert unaffected.status_code == 200  # another key's budget is its own
    assert np.isfinite(limited.json()["details"][0]["retry_after_s"])
