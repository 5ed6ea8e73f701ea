"""Joining the Ray cluster a command runs on: one rule for every entry point.

Training, Tune, walk-forward windows and the Serve app all call :func:`init_ray`: a job
submitted to a cluster (cluster.jobs) runs with RAY_ADDRESS set by the job supervisor
and joins that cluster; a command run by hand starts a local instance.
"""

from __future__ import annotations

import os


def init_ray(num_cpus: int | None = None) -> None:
    """Connect to RAY_ADDRESS when set, else start a local instance (idempotent)."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"])
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False)
