"""The shipped default training learns: a planted signal is found, costs are learned.

Every arm trains ``TrainConfig()`` (the defaults users get from ``quantum train``)
and changes only the data and the budget: no hand-tuned PPO settings. The first
phases of the default schedule (shortened) run the same way. Everything is judged
out of sample, on data the policy never saw, against the flat policy (never trades)
and the random policy:

- planted news (news.synthetic: headlines whose tone leads each asset's large hourly
  moves, read only through the `text` observation: the headlines' MiniLM embeddings,
  sentiment, recency and asset flags, pooled by the model's TextEncoder; trained on
  seed 7, judged on seed 99): beats the same defaults trained without news and flat by
  more than 4 standard errors and 0.1% a day; the decoy stream (same timing, tones
  independent of the moves) beats flat by no more than 4 standard errors or 0.2% a day
  and loses no more than the cost tolerance below.
- planted signal (envs.planted: the sign of each asset's return over the next hour,
  four decisions of 15 minutes; trained on synthetic seed 7, judged on seed 99): beats
  flat and random by more than 4 standard errors and 0.5% a day. (A sign of the next
  15 minutes only flips every other step and its oracle keeps half its gross edge net
  of costs; the hour's sign is the clearer test of whether the policy reads a feature.)
- no edge (the synthetic market, and the real Binance sample in ../shared/realdata
  split by date: trained before 2023-08-05, validated until 2023-08-10, judged on
  episodes in the test part from 2023-08-10 on): turnover and fees fall over
  training (last 3 iterations at most TURNOVER_FALL of the first 3), and the
  out-of-sample mean episode return is no worse than flat by more than ROUND_TRIPS
  round trips of the initial policy's mean position per asset at the taker fee.

Seeds: training seed 1, evaluation seed 3, 64 evaluation episodes per policy.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from envs.config import CostConfig
from rl.checkpoint import load_module
from rl.config import TrainConfig
from rl.evaluate import evaluate, flat_policy, module_policy, random_policy
from rl.schedule import Schedule
from rl.splits import Span, held_out_env_config
from rl.train import train
from tests.unit.market.realdata import SAMPLE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEPS = 61_440
"""30 iterations of the default 2048-step batch."""
TURNOVER_FALL = 0.25
ROUND_TRIPS = 3
REAL = (
    Path(__file__).resolve().parents[3] / "shared" / "realdata" / "binance_usdm_1m_2023-07_2023-08"
)
SYMBOLS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]


def _defaults(env_config: dict, steps: int = STEPS) -> TrainConfig:
    return TrainConfig().with_overrides(
        **{f"env_config.{k}": v for k, v in env_config.items()},
        **{"tracking.wandb": False, "steps": steps, "checkpoint_every": 1000, "seed": 1},
    )


def _round_trip_tolerance(config: TrainConfig) -> float:
    """ROUND_TRIPS round trips of the initial policy's mean position in every asset, at
    the taker fee, as a fraction of equity."""
    budget = 0.5 * 20.0  # max_concentration x max_leverage (risk.limits defaults)
    per_asset = config.model.initial_size * budget
    return ROUND_TRIPS * 2 * CostConfig().taker_fee * per_asset * len(SYMBOLS)


def _curve(run_dir: Path, key: str) -> np.ndarray:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return np.array(
        [r[f"env_runners/trading/{key}"] for r in rows if f"env_runners/trading/{key}" in r]
    )


def _judge(checkpoint: Path, held_out: dict) -> dict[str, dict[str, float]]:
    module = load_module(checkpoint)
    return {
        "ppo": evaluate(lambda space: module_policy(module), held_out, episodes=64, seed=3),
        "flat": evaluate(flat_policy, held_out, episodes=64, seed=3),
        "random": evaluate(random_policy, held_out, episodes=64, seed=3),
    }


def _assert_costs_learned(config: TrainConfig, run_dir: Path, scores: dict) -> None:
    for key in ("turnover", "fees"):
        curve = _curve(run_dir, key)
        assert curve[-3:].mean() <= TURNOVER_FALL * curve[:3].mean(), (key, curve)
    ppo, flat = scores["ppo"], scores["flat"]
    assert ppo["return"] >= flat["return"] - _round_trip_tolerance(config), scores


def _planted(seed: int, informative: bool = True) -> dict:
    return {
        "synthetic_seed": seed,
        "planted_signal": {"horizon": 59, "informative": informative, "seed": seed},
    }


def test_the_defaults_find_a_planted_signal_and_beat_flat_and_random_out_of_sample(
    ray_local, tmp_path
):
    config = _defaults(_planted(7))

    result = train(config, tmp_path / "signal")
    scores = _judge(result.checkpoint, {**config.env_config, **_planted(99)})

    ppo, flat, rnd = scores["ppo"], scores["flat"], scores["random"]
    margin = max(0.005, 4 * ppo["return_sem"])
    assert ppo["return"] > flat["return"] + margin, scores
    assert ppo["return"] > rnd["return"] + margin, scores


@pytest.fixture(scope="module")
def synthetic_run(ray_local, tmp_path_factory):
    """The defaults on the synthetic market (seed 7), no news: shared by the cost test and
    the planted-news test (the same policy without the news features)."""
    config = _defaults({"synthetic_seed": 7})
    return config, train(config, tmp_path_factory.mktemp("synthetic") / "run")


def test_the_defaults_learn_the_costs_of_a_synthetic_market_without_edge(synthetic_run):
    config, result = synthetic_run

    scores = _judge(result.checkpoint, {**config.env_config, "synthetic_seed": 99})

    _assert_costs_learned(config, result.run_dir, scores)


NEWS = {"move_quantile": 0.8, "min_gap_bars": 30, "accuracy": 0.9}
"""A denser planted stream than the default (events on the largest 20% of hourly moves,
at least half an hour apart, 90% of them with the move's tone), half-life 30 bars. A
rule reading it (long after good news, short after bad, for 0.8 of the decayed count)
earns 8.8% a day on seed 99; the 10%/hour stream (3.1% a day for that rule) was too
sparse for 30 iterations of the defaults to find."""


def _news(seed: int, informative: bool = True) -> dict:
    """The stream read only as text (no plain news features): the text channel is tested."""
    return {"synthetic_seed": seed,
            "news": {"synthetic": {**NEWS, "seed": seed, "informative": informative},
                     "align": {"half_life_bars": 30}, "text": True, "features": False}}


def test_planted_news_beats_the_same_policy_without_it_out_of_sample(synthetic_run, tmp_path):
    """Headlines whose tone leads large moves (news.synthetic), read through the text
    channel: trained on seed 7, judged on seed 99 against the defaults trained without
    news."""
    plain_config, plain = synthetic_run
    config = _defaults(_news(7))

    result = train(config, tmp_path / "news")
    assert load_module(result.checkpoint).text is not None  # the policy reads the text part
    scores = _judge(result.checkpoint, {**config.env_config, **_news(99)})
    module = load_module(plain.checkpoint)
    without = evaluate(lambda space: module_policy(module),
                       {**plain_config.env_config, "synthetic_seed": 99}, episodes=64, seed=3)

    ppo = scores["ppo"]
    margin = max(0.001, 4 * max(ppo["return_sem"], without["return_sem"]))
    assert ppo["return"] > without["return"] + margin, (scores, without)
    assert ppo["return"] > scores["flat"]["return"] + margin, scores


def test_a_decoy_news_stream_gives_no_edge(ray_local, tmp_path):
    """The same stream's timing with tones independent of the moves: nothing to learn."""
    config = _defaults(_news(7, informative=False))

    result = train(config, tmp_path / "decoy")
    scores = _judge(result.checkpoint, {**config.env_config, **_news(99, informative=False)})

    ppo, flat = scores["ppo"], scores["flat"]
    assert ppo["return"] <= flat["return"] + max(0.002, 4 * ppo["return_sem"]), scores
    assert ppo["return"] >= flat["return"] - _round_trip_tolerance(config), scores


def test_the_first_phases_of_the_default_schedule_learn_the_costs(ray_local, tmp_path):
    schedule = Schedule.load("default")
    base = _defaults({"synthetic_seed": 7}, steps=STEPS // 2)
    first = train(schedule.config_for(1, base), tmp_path / "phase1")
    second_config = schedule.config_for(2, base)

    second = train(second_config, tmp_path / "phase2", init_module=first.checkpoint)
    scores = _judge(second.checkpoint, {**second_config.env_config, "synthetic_seed": 99})

    curve = np.concatenate([_curve(first.run_dir, "turnover"), _curve(second.run_dir, "turnover")])
    assert curve[-3:].mean() <= TURNOVER_FALL * curve[:3].mean(), curve
    assert scores["ppo"]["return"] >= -_round_trip_tolerance(second_config), scores


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    if not SAMPLE.is_dir():
        pytest.skip(f"the real sample is not at {SAMPLE}")
    from market.importer import FolderImportConfig, import_folder
    from market.store import ParquetStore

    root = tmp_path_factory.mktemp("real")
    config = FolderImportConfig(exchange="binanceusdm", label="open", time_unit="datetime")
    import_folder(ParquetStore(root), SAMPLE, config)
    return root


def test_the_defaults_learn_the_costs_of_real_data_and_hold_out_of_sample(
    ray_local, tmp_path, real_store
):
    data = {"data_dir": str(real_store), "exchange": "binanceusdm", "symbols": SYMBOLS}
    config = _defaults(data).with_overrides(
        **{"split.validation_start": "2023-08-05", "split.test_start": "2023-08-10"}
    )

    result = train(config, tmp_path / "real")
    test = json.loads((result.run_dir / "manifest.json").read_text())["splits"]["test"]
    held_out = held_out_env_config(config.env_config, Span(test["first_bar"], test["last_bar"]))
    scores = _judge(result.checkpoint, held_out)

    assert test["first"] == "2023-08-10T00:00:00+00:00"
    _assert_costs_learned(config, result.run_dir, scores)
