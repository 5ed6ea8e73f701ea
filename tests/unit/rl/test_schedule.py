"""The phase schedule and the next-phase recommendations."""

import json

import pytest
from pydantic import ValidationError

from rl.config import TrainConfig
from rl.recommend import read_recommendations, recommend, write_recommendations
from rl.schedule import MUTABLE_KEYS, Schedule


def test_default_schedule_is_the_seeds_nine_phases_to_ten_million_steps():
    schedule = Schedule.load("default")

    assert len(schedule.phases) == 9
    assert schedule.phases[-1].until_steps == 10_000_000
    foundation = [p for p in schedule.phases if p.stage == "foundation"]
    assert foundation[-1].until_steps == 1_000_000
    assert all(p.stage == "mastery" for p in schedule.phases[len(foundation) :])
    for phase in schedule.phases:
        assert set(phase.reasons) == set(phase.settings), phase.name


def test_every_phase_of_every_shipped_schedule_builds_a_valid_config():
    for name in ("default", "ci"):
        schedule = Schedule.load(name)
        for number, _ in schedule.select(f"1-{len(schedule.phases)}"):
            config = schedule.config_for(number, TrainConfig())
            assert config.ppo.lr > 0


def test_phases_apply_cumulatively_and_only_change_what_they_list():
    schedule = Schedule.load("default")
    base = TrainConfig()

    third = schedule.config_for(3, base)
    fourth = schedule.config_for(4, base)

    assert third.ppo.entropy_coeff == 0.005  # set by phase 3
    assert third.env_config["env"]["reward"]["turnover"] == 0.0005  # kept from phase 2
    assert third.env_config["synthetic_days"] == base.env_config["synthetic_days"]
    assert fourth.ppo.lr == 0.0002 and fourth.ppo.train_batch_size == 4096
    assert schedule.start_of(4) == 1_000_000


def test_bad_schedules_are_refused():
    phase = {"name": "a", "stage": "foundation", "until_steps": 10}
    with pytest.raises(ValidationError, match="increasing"):
        Schedule.model_validate({"name": "x", "phases": [phase, {**phase, "name": "b"}]})
    with pytest.raises(ValidationError, match="cannot be mutable"):
        Schedule.model_validate({"name": "x", "phases": [{**phase, "mutable": ["seed"]}]})
    with pytest.raises(ValueError, match="outside"):
        Schedule.load("ci").select("2-5")
    with pytest.raises(FileNotFoundError, match="shipped"):
        Schedule.load("nope")


def _rows(n, **series):
    return [{k: v[i] for k, v in series.items()} for i in range(n)]


def test_recommendations_react_to_entropy_collapse_kl_and_drawdowns_with_reasons():
    P, T = "learners/default_policy/", "env_runners/trading/"
    rows = _rows(
        6,
        **{
            P + "entropy": [10, 8, 6, 4, 3, 2],
            P + "mean_kl_loss": [0.08] * 6,
            P + "vf_explained_var": [0.5] * 6,
            T + "max_drawdown": [0.25] * 6,
            T + "liquidated": [0.0] * 6,
            T + "sharpe": [1, 1, 1, 1, 1, 1],
            T + "return": [0.0] * 6,
        },
    )
    config = TrainConfig()

    out = recommend(rows, config)

    assert out["ppo.entropy_coeff"]["value"] == pytest.approx(0.015)
    assert "collapsed" in out["ppo.entropy_coeff"]["reason"]
    assert out["ppo.lr"]["value"] == pytest.approx(1.5e-4)
    assert out["ppo.clip_param"]["value"] == pytest.approx(0.16)
    assert out["env_config.env.reward.drawdown"]["value"] == 0.5
    assert "ppo.vf_loss_coeff" not in out and "env_config.env.reward.leverage" not in out


def test_healthy_phase_gets_no_recommendations_and_values_stay_in_range(tmp_path):
    P, T = "learners/default_policy/", "env_runners/trading/"
    healthy = _rows(
        6,
        **{
            P + "entropy": [10, 9.5, 9, 9, 8.8, 8.7],
            P + "mean_kl_loss": [0.01] * 6,
            P + "vf_explained_var": [0.6] * 6,
            T + "max_drawdown": [0.05] * 6,
            T + "sharpe": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        },
    )
    assert recommend(healthy, TrainConfig()) == {}

    collapsed = _rows(3, **{P + "entropy": [10, 1, 1], P + "mean_kl_loss": [5.0] * 3})
    config = TrainConfig().with_overrides(**{"ppo.entropy_coeff": 0.09, "ppo.lr": 2e-6})
    out = recommend(collapsed, config)
    for key, rec in out.items():
        lo, hi = MUTABLE_KEYS[key]
        assert lo <= rec["value"] <= hi

    path = tmp_path / "phase2_recommendations.json"
    write_recommendations(path, 2, out, {"rows": 3})
    assert json.loads(path.read_text())["phase"] == 2
    applied = TrainConfig().with_overrides(**read_recommendations(path))
    assert applied.ppo.entropy_coeff == out["ppo.entropy_coeff"]["value"]


def test_early_end_criteria_need_every_given_condition_and_the_minimum_steps():
    from rl.schedule import Criteria

    criteria = Criteria(min_steps=1000, mean_return=0.01, max_drawdown=0.1)
    good = {"env_runners/trading/return": 0.02, "env_runners/trading/max_drawdown": 0.05}

    assert criteria.met(1000, good)
    assert not criteria.met(999, good)
    assert not criteria.met(1000, {**good, "env_runners/trading/max_drawdown": 0.2})
    assert not criteria.met(1000, {})
    assert not Criteria().met(10**9, good)  # no conditions: the phase runs its budget


def test_pbt_mutations_cover_algorithm_and_env_keys_and_stay_valid():
    from rl.phases import _mutations, keep_valid, with_mutable_defaults
    from rl.schedule import Phase

    phase = Phase(
        name="p", stage="mastery", until_steps=10,
        mutable=("ppo.lr", "ppo.num_epochs", "env_config.env.reward.drawdown"),
    )
    config = with_mutable_defaults(phase, TrainConfig())

    space = _mutations(phase, config)
    wild = {"lr": 5.0, "num_epochs": 99.7, "env_config": {"env": {"reward": {"drawdown": -3}}}}
    valid = keep_valid(wild)

    assert config.env_config["env"]["reward"]["drawdown"] == 0.0  # present for PBT to perturb
    assert set(space) == {"lr", "num_epochs", "env_config"}
    assert space["lr"].lower >= 3e-4 / 4 and space["lr"].upper <= 3e-4 * 4
    assert "drawdown" in space["env_config"]["env"]["reward"]
    assert valid["lr"] == MUTABLE_KEYS["ppo.lr"][1]
    assert valid["num_epochs"] == MUTABLE_KEYS["ppo.num_epochs"][1]
    assert valid["env_config"]["env"]["reward"]["drawdown"] == 0.0
