"""The phase schedule on Ray Tune: a CI-sized schedule (3 tiny phases, population 2)."""

import json

import pytest
import torch

from rl.checkpoint import load_module
from rl.config import TrainConfig
from rl.phases import run_phases
from rl.rllib_compat import algorithm_module_dir
from rl.schedule import Schedule
from tests.integration.wandb_offline import history

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE = TrainConfig.model_validate(
    {
        "env_config": {"synthetic_days": 4, "synthetic_seed": 3, "env": {"record_ledger": False}},
        "ppo": {"train_batch_size": 512, "minibatch_size": 128, "num_epochs": 2},
        "rollouts": {"envs_per_runner": 8},
        "checkpoint_every": 2,
        "tracking": {"wandb": True},
    }
)


@pytest.fixture(scope="module")
def ci_run(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "ci"
    results = run_phases(Schedule.load("ci"), "1-3", BASE, out, population=2)
    return out, results


def test_every_phase_runs_its_population_and_records_its_best_checkpoint(ci_run):
    out, results = ci_run
    summary = json.loads((out / "phases.json").read_text())

    assert [r.number for r in results] == [1, 2, 3]
    assert sorted(summary) == ["1", "2", "3"]
    for r in results:
        assert len(r.trials) == 2 and all(t["error"] is None for t in r.trials)
        assert algorithm_module_dir(r.best_checkpoint).is_dir()


def test_results_carry_the_phase_and_a_global_step_counter_that_keeps_increasing(ci_run):
    out, _ = ci_run
    starts = {1: 0, 2: 2048, 3: 4096}
    for phase, start in starts.items():
        ends = []
        for result_file in (out / "tune" / f"phase{phase}").glob("*/result.json"):
            rows = [json.loads(line) for line in result_file.read_text().splitlines()]
            tags = [r["quantum"] for r in rows]
            assert {t["phase"] for t in tags} == {phase}
            steps = [t["global_env_steps"] for t in tags]
            assert steps == sorted(steps) and steps[0] > start and steps[-1] <= start + 2048 + 512
            ends.append(steps[-1] - start)
        # phase 3's criteria (min 1024 steps, drawdown below 100%) end it before its budget
        assert max(ends) < 2048 if phase == 3 else min(ends) >= 2048


def test_recommendations_are_written_for_each_next_phase_with_reasons(ci_run):
    out, _ = ci_run
    for phase in (2, 3):
        body = json.loads((out / f"phase{phase}_recommendations.json").read_text())
        assert body["phase"] == phase
        assert "env_runners/trading/return" in body["finished_phase_metrics"]
        for rec in body["recommendations"].values():
            assert rec["reason"] and isinstance(rec["value"], float)
    assert not (out / "phase4_recommendations.json").exists()


def test_pbt_lineage_is_recorded_with_valid_hyperparameters(ci_run):
    out, results = ci_run
    events = [e for r in results for e in r.lineage]

    assert events, "2 trials x 3 perturbation points per phase: PBT should exploit"
    for event in events:
        assert event["trial"] != event["copied"]
        lr = event["changed"].get("lr")
        if lr:
            assert 1e-6 <= lr[1] <= 1e-2
    summary = json.loads((out / "phases.json").read_text())
    assert sum(len(p["pbt_lineage"]) for p in summary.values()) == len(events)


def test_each_phase_starts_from_the_previous_phases_best_policy(ci_run):
    out, results = ci_run
    # phase 2's trials were built with phase 1's best module as their starting weights
    experiment = out / "tune" / "phase2"
    params = json.loads(next(experiment.glob("*/params.json")).read_text())
    module_dir = algorithm_module_dir(results[0].best_checkpoint).resolve()
    assert str(module_dir) in params["_rl_module_spec"]
    first = load_module(results[0].best_checkpoint)
    assert all(torch.isfinite(p).all() for p in first.parameters())


def test_every_trial_is_a_wandb_run_and_the_summary_holds_the_lineage(ci_run):
    out, results = ci_run
    trial_runs = sorted((out / "wandb" / "wandb").glob("offline-run-*/run-*.wandb"))
    summary_runs = sorted((out / "wandb").glob("offline-run-*/run-*.wandb"))

    assert len(trial_runs) == 6  # 3 phases x population 2
    phases_seen = set()
    for run in trial_runs:
        last = history(run)[-1]
        assert "env_runners/trading/return" in last and "quantum/global_env_steps" in last
        phases_seen.add(last["quantum/phase"])
    assert phases_seen == {1, 2, 3}
    assert len(summary_runs) == 1
    logged = history(summary_runs[0])[-1]
    assert logged["phases/nrows"] == 3
    assert logged["pbt_lineage/nrows"] == sum(len(r.lineage) for r in results)


def test_a_storage_uri_holds_the_experiments_and_phases_chain_through_local_copies(
    ray_local, tmp_path
):
    """Tune's storage_path as a URI (as on a multi-node cluster with s3://): each phase's
    experiment lives there, and the next phase starts from a downloaded best checkpoint."""
    out, storage = tmp_path / "run", tmp_path / "bucket"

    results = run_phases(Schedule.load("ci"), "1-2", BASE, out, population=1,
                         max_concurrent=1, storage_path=f"file://{storage}")

    assert [r.number for r in results] == [1, 2]
    for r in results:
        assert r.best_checkpoint.is_relative_to(out / "best")
        assert algorithm_module_dir(r.best_checkpoint).is_dir()
        assert list((storage / f"phase{r.number}").glob("*/result.json"))
    assert not (out / "tune").exists()  # nothing went to the default local storage
    summary = json.loads((out / "phases.json").read_text())
    assert summary["2"]["best_checkpoint"] == str(results[1].best_checkpoint)
