"""One local Ray instance for every integration test (starting Ray costs seconds)."""

import os

import pytest


@pytest.fixture(scope="session")
def ray_local():
    import ray

    os.environ.pop("RAY_ADDRESS", None)
    os.environ["WANDB_MODE"] = "offline"
    os.environ.pop("WANDB_API_KEY", None)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def policy_runs(ray_local, tmp_path_factory):
    """Two briefly trained policies (seeds 11 and 12) shared by the Serve test modules:
    the served one and a swap target. Read-only to the tests."""
    from tests.integration import serving_fixtures as sf

    return sf.train_runs(tmp_path_factory.mktemp("policies"))
