"""Job specs for `quantum submit`: what is uploaded, what runs, what is refused."""

import shlex
import zipfile

import pytest
from ray._private.runtime_env.packaging import create_package

from cluster.jobs import EXCLUDES, JobSpec, parse_env, pinned_requirements, resolve_address


def test_entrypoint_is_the_quantum_command_with_its_arguments_quoted():
    spec = JobSpec("train", ("--out", "runs/my run", "--env-runners", "3"))

    assert shlex.split(spec.entrypoint) == [
        "python", "-m", "quantum", "train", "--out", "runs/my run", "--env-runners", "3",
    ]


def test_cluster_jobs_default_to_one_env_runner_per_spare_cpu():
    train, tune = JobSpec("train", ("--steps", "10")), JobSpec("tune", ("--env-runners=2",))
    backtest = JobSpec("backtest", ("--model-path", "runs/a"))

    assert shlex.split(train.entrypoint)[-2:] == ["--env-runners", "auto"]
    assert shlex.split(tune.entrypoint).count("--env-runners=2") == 1
    assert "--env-runners" not in tune.entrypoint.replace("--env-runners=2", "")
    assert "auto" not in backtest.entrypoint


def test_uploaded_package_leaves_out_data_runs_and_the_virtualenv(tmp_path):
    """Ray's own packager with our excludes and .gitignore handling, on a project tree."""
    root = tmp_path / "project"
    tree = ("rl/train.py", "cluster/jobs.py", "data/synthetic/BTC.parquet",
            "runs/a/checkpoints/x.pt", ".venv/lib/site.py", "results/r.html",
            "wandb/run/x.log", "rl/__pycache__/train.pyc", "tests/fixtures/ccxt.json")
    for path in tree:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("x")
    spec = JobSpec("train", working_dir=root)
    runtime = spec.runtime_env()

    create_package(str(root), tmp_path / "pkg.zip", include_gitignore=True,
                   excludes=runtime["excludes"])

    names = {n.rstrip("/") for n in zipfile.ZipFile(tmp_path / "pkg.zip").namelist()}
    files = {n for n in names if "." in n.rsplit("/", 1)[-1]}
    assert files == {"rl/train.py", "cluster/jobs.py", "tests/fixtures/ccxt.json"}
    assert runtime["working_dir"] == str(root)
    assert "/data/" in EXCLUDES and "/.venv/" in EXCLUDES


def test_runtime_env_forwards_wandb_settings_but_no_secret(monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "perps")
    monkeypatch.setenv("WANDB_API_KEY", "secret-value")
    monkeypatch.delenv("WANDB_MODE", raising=False)

    env = JobSpec("tune", env={"QUANTUM_PHASE": "2"}).runtime_env()["env_vars"]

    assert env["WANDB_PROJECT"] == "perps"
    assert "WANDB_MODE" not in env  # unset here: the cluster's own setting applies
    assert env["QUANTUM_PHASE"] == "2" and env["PYTHONUNBUFFERED"] == "1"
    assert "secret-value" not in str(env) and "WANDB_API_KEY" not in env


@pytest.mark.parametrize(
    "key", ["WANDB_API_KEY", "aws_secret_access_key", "HF_TOKEN", "DB_PASSWORD"]
)
def test_secret_looking_variables_are_refused(key):
    with pytest.raises(ValueError, match="look like secrets"):
        JobSpec("train", env={key: "x"})


def test_unknown_kind_and_bad_env_items_are_refused():
    with pytest.raises(ValueError, match="unknown job kind"):
        JobSpec("deploy")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_env(["novalue"])
    assert parse_env(["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"}


def test_pip_option_installs_the_pinned_dependencies():
    runtime = JobSpec("train", pip=True).runtime_env()

    assert runtime["pip"] == pinned_requirements()
    assert any(r.startswith("ray[rllib,tune,serve]==") for r in runtime["pip"])
    assert "pip" not in JobSpec("train").runtime_env()


def test_address_comes_from_the_flag_then_ray_address_then_localhost(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    assert resolve_address("http://other:8265") == "http://other:8265"
    assert resolve_address(None) == "http://head:8265"
    monkeypatch.delenv("RAY_ADDRESS")
    assert resolve_address(None) == "http://127.0.0.1:8265"
