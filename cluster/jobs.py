"""Submitting `quantum` commands to a Ray cluster as jobs (Ray's Job Submission SDK).

A job is the same command a user runs locally (``python -m quantum train ...``) started
by the cluster's job supervisor on the head node, where Ray sets RAY_ADDRESS so the
command joins the cluster instead of starting its own instance; its EnvRunners, Tune
trials and Serve replicas then spread over the nodes. The project travels as the
runtime_env's working_dir, without the data, runs, results and virtualenv (they are
git-ignored, which Ray honours, and excluded explicitly besides): the cluster reads
data from its own storage and writes checkpoints to the storage path the job names.
The nodes are expected to have the project's dependencies installed (the configs in
cluster/ do that); ``pip=True`` asks Ray to install the pinned set per job instead.

Secrets never travel in the runtime_env (it is visible in the dashboard and job info):
only W&B's non-secret settings are forwarded; WANDB_API_KEY must be in the cluster's
environment (cluster/ configs take it from a secret).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KINDS = ("train", "tune", "backtest")
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
EXCLUDES = (
    "/.venv/", "/.git/", "/data/", "/runs/", "/results/", "/wandb/", "/models/",
    "/build/", "/dist/", "__pycache__/", "*.pyc", ".pytest_cache/", ".ruff_cache/",
    ".hypothesis/", "*.parquet", ".env",
)
FORWARDED_ENV = ("WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_GROUP")
"""Environment variables copied into the job when set here (none of them secret). Unset,
the cluster's own settings apply: W&B is online where the cluster has a key."""
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def resolve_address(address: str | None) -> str:
    """--address, else RAY_ADDRESS, else the local dashboard."""
    return address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS


def pinned_requirements(root: Path = PROJECT_ROOT) -> list[str]:
    """The project's pinned runtime dependencies (pyproject), for a per-job pip env."""
    with (root / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


@dataclass(frozen=True)
class JobSpec:
    """One `quantum` command to run on the cluster."""

    kind: str
    args: tuple[str, ...] = ()
    working_dir: Path = PROJECT_ROOT
    pip: bool = False
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the job (KEY=VALUE from the command line; no secrets)."""
    entrypoint_num_cpus: float | None = None
    submission_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown job kind {self.kind!r}: choose one of {', '.join(KINDS)}")
        secret = [k for k in self.env if any(m in k.upper() for m in SECRET_MARKERS)]
        if secret:
            raise ValueError(
                f"{', '.join(secret)} look like secrets; the runtime_env is visible in the "
                "dashboard, so set them in the cluster's environment instead"
            )

    @property
    def entrypoint(self) -> str:
        """The command; train and tune jobs default to ``--env-runners auto`` (one runner
        per spare CPU of the cluster) where a local run defaults to sampling in the driver."""
        args = list(self.args)
        if self.kind in ("train", "tune") and not any(
            a == "--env-runners" or a.startswith("--env-runners=") for a in args
        ):
            args += ["--env-runners", "auto"]
        return shlex.join(["python", "-m", "quantum", self.kind, *args])

    def runtime_env(self) -> dict:
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"  # log lines reach `quantum submit` as they happen
        runtime = {
            "working_dir": str(self.working_dir),
            "excludes": list(EXCLUDES),
            "env_vars": env,
        }
        if self.pip:
            runtime["pip"] = pinned_requirements(self.working_dir)
        return runtime


def client(address: str | None):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(resolve_address(address))


def submit(spec: JobSpec, address: str | None = None) -> str:
    """Submit and return the job's submission id (the job runs on its own from here)."""
    return client(address).submit_job(
        entrypoint=spec.entrypoint,
        runtime_env=spec.runtime_env(),
        submission_id=spec.submission_id,
        entrypoint_num_cpus=spec.entrypoint_num_cpus,
        metadata={"quantum_kind": spec.kind},
    )


def follow(job_id: str, address: str | None, write: Callable[[str], None]) -> str:
    """Stream the job's logs to ``write`` until it ends; returns its final status."""

    async def _tail() -> None:
        async for lines in client(address).tail_job_logs(job_id):
            write(lines)

    asyncio.run(_tail())
    return wait(job_id, address)


def wait(job_id: str, address: str | None, timeout_s: float = 60.0) -> str:
    """The job's terminal status (the log stream can end a moment before the status)."""
    import time

    from ray.job_submission import JobStatus

    jobs = client(address)
    deadline = time.monotonic() + timeout_s
    while True:
        status = jobs.get_job_status(job_id)
        if status.is_terminal() or time.monotonic() > deadline:
            return str(status.value if isinstance(status, JobStatus) else status)
        time.sleep(0.5)


def job_rows(address: str | None) -> list[dict[str, str]]:
    """Every job the cluster knows, newest first, as display rows."""
    import datetime as dt

    def stamp(ms: int | None) -> str:
        if not ms:
            return "-"
        return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")

    details = sorted(client(address).list_jobs(), key=lambda j: j.start_time or 0, reverse=True)
    return [
        {
            "id": j.submission_id or j.job_id or "-",
            "status": str(j.status.value if hasattr(j.status, "value") else j.status),
            "entrypoint": j.entrypoint,
            "start": stamp(j.start_time),
            "end": stamp(j.end_time),
        }
        for j in details
    ]


def parse_env(items: Sequence[str]) -> dict[str, str]:
    """['A=1', 'B=x'] -> {'A': '1', 'B': 'x'}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--env needs KEY=VALUE, got {item!r}")
        out[key] = value
    return out
