"""Cluster-facing knobs of a run: 'auto' EnvRunners and the storage path mirror."""

import pytest

from rl.algo import resolve_env_runners
from rl.config import RolloutSettings, TrainConfig
from rl.storage import is_uri, mirror, read_text


@pytest.mark.parametrize(
    ("cpus", "trials", "learners", "gpus", "expected"),
    [
        (2, 1, 0, 0.0, 1),  # this machine: the driver's learner keeps one CPU
        (64, 1, 0, 0.0, 63),
        (64, 4, 0, 0.0, 15),  # four concurrent Tune trials share the cluster
        (64, 1, 2, 0.0, 61),  # two CPU learners
        (64, 1, 2, 1.0, 63),  # GPU learners do not take rollout CPUs
        (1, 1, 0, 0.0, 0),  # nothing spare: sample in the driver
    ],
)
def test_auto_env_runners_fill_the_spare_cpus(cpus, trials, learners, gpus, expected):
    runs = RolloutSettings(env_runners="auto", num_learners=learners, gpus_per_learner=gpus)

    assert resolve_env_runners(runs, trials, cluster_cpus=cpus) == expected


def test_explicit_env_runners_are_kept_and_the_cli_string_form_validates():
    assert resolve_env_runners(RolloutSettings(env_runners=3), cluster_cpus=64) == 3
    config = TrainConfig().with_overrides(**{"rollouts.env_runners": "4"})
    assert config.rollouts.env_runners == 4
    assert (
        TrainConfig().with_overrides(**{"rollouts.env_runners": "auto"}).rollouts.env_runners
        == "auto"
    )
    with pytest.raises(ValueError):
        TrainConfig().with_overrides(**{"rollouts.env_runners": "many"})
    with pytest.raises(ValueError):
        TrainConfig().with_overrides(**{"rollouts.env_runners": -1})


def test_mirror_copies_a_run_folder_to_a_uri_with_links_as_pointer_files(tmp_path):
    run = tmp_path / "runs" / "first"
    (run / "checkpoints" / "iter_000002").mkdir(parents=True)
    (run / "checkpoints" / "iter_000002" / "state.pkl").write_bytes(b"\x00\x01weights")
    (run / "checkpoints" / "final").symlink_to("iter_000002")
    (run / "results.jsonl").write_text('{"a": 1}\n')
    destination = f"file://{tmp_path}/bucket/quantum/first"

    assert is_uri(destination) and not is_uri(tmp_path)
    mirror(run, destination)
    (run / "results.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    mirror(run, destination)  # later checkpoints overwrite

    out = tmp_path / "bucket" / "quantum" / "first"
    assert (out / "checkpoints" / "iter_000002" / "state.pkl").read_bytes() == b"\x00\x01weights"
    assert not (out / "checkpoints" / "final").exists()  # the link is not followed
    assert read_text(f"{destination}/checkpoints/FINAL") == "iter_000002"
    assert read_text(str(out / "results.jsonl")) == '{"a": 1}\n{"a": 2}\n'
    assert read_text(f"{destination}/missing.txt") is None
