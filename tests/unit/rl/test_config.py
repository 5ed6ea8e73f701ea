"""TrainConfig: typed, frozen, strict; YAML and command-line overrides; tracking hygiene."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from rl.cli import load_config
from rl.config import ModelConfig, TrainConfig
from rl.tracking import redact, wandb_mode

CONFIGS = sorted((Path(__file__).resolve().parents[3] / "rl" / "configs").glob("*.yaml"))


def test_defaults_are_the_seed_ppo_hyperparameters_with_a_discount_for_15_minute_steps():
    ppo = TrainConfig().ppo
    assert (ppo.lr, ppo.minibatch_size, ppo.train_batch_size, ppo.num_epochs) == (
        3e-4, 64, 2048, 10,
    )
    assert (ppo.gamma, ppo.lambda_, ppo.clip_param) == (0.9, 0.9, 0.2)
    assert TrainConfig().env_config["env"]["bars_per_step"] == 15


def test_unknown_keys_are_errors_at_every_level(tmp_path):
    with pytest.raises(ValidationError, match="lrr"):
        TrainConfig.model_validate({"ppo": {"lrr": 1e-3}})
    path = tmp_path / "bad.yaml"
    path.write_text("stepz: 10\n")
    with pytest.raises(ValidationError, match="stepz"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ValueError, match="unknown config key"):
        TrainConfig().with_overrides(**{"ppo.lrr": 1.0})


def test_configs_are_frozen_and_validated():
    config = TrainConfig()
    with pytest.raises(ValidationError):
        config.steps = 5
    with pytest.raises(ValidationError, match="divisible"):
        ModelConfig(d_model=30, heads=4)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_yaml_configs_are_valid(path):
    assert TrainConfig.from_yaml(path).steps > 0


def test_command_line_overrides_land_in_the_right_fields(tmp_path):
    config = load_config(
        "defaults", data=tmp_path, steps=1000, env_runners=3, envs_per_runner=16, model="mlp",
        seed=4, wandb=False,
    )
    assert config.steps == 1000 and config.seed == 4
    assert (config.rollouts.env_runners, config.rollouts.envs_per_runner) == (3, 16)
    assert config.model.kind == "mlp" and config.tracking.wandb is False
    assert config.env_config["data_dir"] == str(tmp_path)
    assert "synthetic_days" not in config.env_config


def test_digest_changes_with_any_field_and_only_then():
    base = TrainConfig()
    assert base.digest() == TrainConfig().digest()
    assert base.digest() != base.with_overrides(**{"ppo.lr": 1e-4}).digest()


def test_credentials_are_redacted_before_tracking():
    config = {"exchange": {"apiKey": "k", "secret": "s", "name": "okx"}, "x": [{"password": 1}]}
    assert redact(config) == {
        "exchange": {"apiKey": "<redacted>", "secret": "<redacted>", "name": "okx"},
        "x": [{"password": "<redacted>"}],
    }


def test_wandb_is_offline_without_a_key(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"


def test_a_config_names_only_what_it_changes_of_the_default_env_config():
    from rl.config import DEFAULT_ENV_CONFIG

    config = TrainConfig.model_validate({"env_config": {"env": {"episode_steps": 16}}})

    assert config.env_config["env"]["episode_steps"] == 16
    assert config.env_config["env"]["bars_per_step"] == DEFAULT_ENV_CONFIG["env"]["bars_per_step"]
    assert config.env_config["synthetic_days"] == DEFAULT_ENV_CONFIG["synthetic_days"]
    assert TrainConfig.model_validate(config.model_dump()) == config
