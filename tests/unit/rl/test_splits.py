"""Data splits (rl.splits): parts in time order with gaps, recorded with their exact
times, and training episodes that never read a held-out bar."""

import numpy as np
import pytest

from envs.registry import make_env, market_for
from rl.config import SplitConfig, TrainConfig
from rl.splits import held_out_env_config, part_env_config, record, resolve, run_splits

ENV = {"synthetic_days": 4, "synthetic_seed": 3, "env": {"episode_steps": 8, "bars_per_step": 15}}


def test_parts_follow_each_other_in_time_with_the_gap_between():
    data = market_for(ENV)
    split = SplitConfig(validation=0.2, test=0.1, gap_bars=30)

    parts = resolve(data, split, window=24)

    usable = data.n_bars - max(data.first_valid, 23)
    assert parts.train.first == max(data.first_valid, 23)
    assert parts.validation.first == parts.train.last + 31
    assert parts.test.first == parts.validation.last + 31
    assert parts.test.last == data.n_bars - 1
    assert parts.test.last - parts.test.first + 1 == round(0.1 * usable)
    assert parts.validation.last - parts.validation.first + 1 == pytest.approx(0.2 * usable, abs=1)


def test_dates_place_the_parts_and_the_record_holds_their_exact_times():
    data = market_for(ENV)
    split = SplitConfig(validation_start="2024-01-03T12:00", test_start="2024-01-04T06:00")

    parts = resolve(data, split, window=24)
    written = record(parts, data)

    assert written["validation"]["first"] == "2024-01-03T12:00:00+00:00"
    assert written["test"]["first"] == "2024-01-04T06:00:00+00:00"
    assert written["train"]["last_bar"] == parts.validation.first - split.gap_bars - 1


def test_a_split_that_leaves_too_little_to_train_on_is_refused():
    data = market_for(ENV)

    with pytest.raises(ValueError, match="train on"):
        resolve(data, SplitConfig(validation_start="2024-01-02T01:00"), window=24)


def test_training_episodes_never_start_or_run_into_held_out_bars():
    config = TrainConfig.model_validate({"env_config": ENV})
    parts, _ = run_splits(config.env_config, config.split)
    env = make_env({**part_env_config(config.env_config, parts.train), "num_envs": 64})
    episode_bars = 8 * 15

    for seed in range(5):
        env.reset(seed=seed)
        starts = env._state["t"].copy()  # the bar each episode starts after
        assert starts.min() >= parts.train.first
        assert starts.max() + episode_bars <= parts.train.last


def test_phase_start_fractions_operate_inside_the_training_part():
    config = TrainConfig.model_validate({"env_config": {**ENV, "start_fraction": [0.5, 1.0]}})
    parts, _ = run_splits(config.env_config, config.split)
    env = make_env({**part_env_config(config.env_config, parts.train), "num_envs": 64})

    env.reset(seed=0)

    middle = (parts.train.first + parts.train.last - 8 * 15) / 2
    assert env._state["t"].min() >= middle - 1
    assert env._state["t"].max() + 8 * 15 <= parts.train.last


def test_held_out_episodes_drop_the_training_start_choices_and_stay_in_their_part():
    config = TrainConfig.model_validate({"env_config": {**ENV, "start_fraction": [0.0, 0.5]}})
    parts, _ = run_splits(config.env_config, config.split)

    held = held_out_env_config(config.env_config, parts.validation)
    env = make_env({**held, "num_envs": 32})
    env.reset(seed=1)

    assert "start_fraction" not in held
    assert np.all(env._state["t"] >= parts.validation.first)
    assert np.all(env._state["t"] + 8 * 15 <= parts.validation.last)
