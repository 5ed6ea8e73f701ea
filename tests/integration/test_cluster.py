"""`quantum submit` against a real two-node Ray cluster on loopback (tests/integration/
ray_cluster.py): a short training job whose two EnvRunners must land one on each node
(each node has one CPU, each runner takes one), logs streamed back to the submitting
terminal, the checkpoint in the run folder and mirrored to the storage path, and the
job visible to `quantum jobs`. The cluster is torn down even when the test fails."""

import json
import logging
import subprocess
import sys

import pytest

from tests.e2e.test_cli_backtest import TINY_YAML
from tests.integration.ray_cluster import local_cluster

pytestmark = [pytest.mark.slow, pytest.mark.integration]
log = logging.getLogger(__name__)


@pytest.fixture
def cluster():
    c = local_cluster()
    try:
        c.start(head_cpus=1, worker_cpus=1)
        yield c
    finally:
        c.stop()


def _quantum(cluster, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = dict(cluster.env, COLUMNS="250", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "quantum", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_training_job_runs_rollouts_on_both_nodes_and_lands_its_checkpoint(cluster, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML.replace("tracking: {wandb: false}", "tracking: {wandb: true}"))
    run, storage = tmp_path / "runs" / "multi", tmp_path / "storage"

    submitted = _quantum(
        cluster, "submit", "train", "--config", str(config), "--steps", "1024",
        "--env-runners", "2", "--envs-per-runner", "4", "--out", str(run),
        "--storage-path", f"file://{storage}", "--job-id", "quantum-multinode",
        "--address", cluster.dashboard,
    )

    output = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, output[-5000:] + cluster.logs()
    assert "submitted quantum-multinode" in output
    assert "job quantum-multinode: SUCCEEDED" in output
    assert "1,024 env steps" in output or "env steps" in output  # the job's summary table
    assert "results:" in output  # the job's last line, streamed back

    nodes = {n["node_id"] for n in cluster.nodes()}
    placement = json.loads((run / "placement.json").read_text())
    log.info("placement: %s; nodes: %s", placement, cluster.nodes())
    assert len(placement) == 2
    assert {row["node_id"] for row in placement} == nodes  # one runner on each node
    assert all(row["env_steps_sampled"] > 0 for row in placement)

    final = run / "checkpoints" / "final"
    assert (final / "learner_group").is_dir()
    mirrored = storage / "multi"
    assert (mirrored / "checkpoints" / "FINAL").read_text() == final.readlink().name
    assert (mirrored / "checkpoints" / final.readlink().name / "learner_group").is_dir()
    assert (mirrored / "placement.json").read_text() == (run / "placement.json").read_text()
    assert list((run / "wandb").glob("offline-run-*")), "the job tracked the run in W&B"

    listed = _quantum(cluster, "jobs", "list", "--address", cluster.dashboard, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "quantum-multinode" in listed.stdout and "SUCCEEDED" in listed.stdout
    logs = _quantum(cluster, "jobs", "logs", "quantum-multinode", "--address",
                    cluster.dashboard, timeout=60)
    assert logs.returncode == 0 and "results:" in logs.stdout
