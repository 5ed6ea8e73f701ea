"""Backtest jobs: a queue with per-key quotas, run as Ray tasks off the request path, and
kept on disk so that a restarted runner replica loses none of them silently.

Each job is a JSON file under ``<state_dir>/jobs/`` replaced atomically at every change of
state. A new replica reads them all back: queued jobs stay queued and run; a job that was
running when the replica died has lost its task handle (Ray cannot hand it to a new
actor), so it is reported failed with that reason, to be submitted again.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import ray
from ray import serve

log = logging.getLogger(__name__)
PUBLIC = ("id", "status", "model_id", "submitted", "started", "finished", "metrics",
          "baselines", "report", "sample", "error", "position")
LOST = ("lost: the backtest runner restarted while this job ran; its result is unknown, "
        "submit it again")
_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\"/:]+/)+[^\s'\",:)]*")


@ray.remote(num_cpus=1, max_retries=0)
def _run_backtest(model_path: str, request: dict, output_dir: str) -> dict:
    """A backtest as a Ray task: its own process and CPU, never the request path."""
    from backtest.run import BacktestOptions, backtest_trained
    from rl.checkpoint import TrainedRun

    trained = TrainedRun.open(model_path)
    data_path = request.get("data_path")
    market = trained.market.elsewhere(
        Path(data_path) if data_path else None, request.get("synthetic_seed"),
        request.get("synthetic_days"), model_symbols=trained.recorded_assets,
    )
    options = BacktestOptions(start=request.get("start"), end=request.get("end"),
                              last_days=request.get("last_days"),
                              baselines=tuple(request.get("baselines", ())))
    run = backtest_trained(trained, market, options, Path(output_dir),
                           allow_in_sample=bool(request.get("allow_in_sample")))
    return {
        "metrics": run.metrics, "baselines": run.baseline_metrics,
        "report": str(Path(output_dir).name + "/" + run.report.name), "sample": run.sample.note,
    }


def _finite(value):
    """NaN/inf (undefined ratios) as None: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def scrub_paths(message: str) -> str:
    """An error message without server paths (a job's error goes back to the client)."""
    return _PATH.sub("<path>", message)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
class BacktestRunner:
    """Queues backtests per API key (at most ``running_per_key`` running and
    ``queued_per_key`` waiting) and starts them as Ray tasks. One replica: the queue is
    its state, on disk."""

    def __init__(self, results_dir: str, state_dir: str | None = None,
                 running_per_key: int = 2, queued_per_key: int = 8) -> None:
        self.results_dir = Path(results_dir)
        self.jobs_dir = Path(state_dir or results_dir) / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.running_per_key, self.queued_per_key = running_per_key, queued_per_key
        self.jobs: dict[str, dict] = {}
        self.refs: dict[str, ray.ObjectRef] = {}
        self.lock = threading.RLock()
        self._recover()
        self.done = threading.Event()
        threading.Thread(target=self._pump, daemon=True, name="backtest-queue").start()

    def _recover(self) -> None:
        from live.journal import JournalError, read_json

        for path in sorted(self.jobs_dir.glob("*.json")):
            try:
                job = read_json(path)
            except JournalError as err:
                log.error("skipping an unreadable job file: %s", err)
                continue
            if job["status"] == "running":
                job.update(status="failed", error=LOST, finished=_now())
                self._save(job)
            self.jobs[job["id"]] = job

    def _save(self, job: dict) -> None:
        from live.journal import write_json_atomic

        write_json_atomic(self.jobs_dir / f"{job['id']}.json", job)

    def _pump(self) -> None:
        while not self.done.wait(0.5):
            try:
                self.tick()
            except Exception:  # the queue must outlive one bad job file or a Ray hiccup
                log.exception("backtest queue")

    def tick(self) -> None:
        """Collect finished tasks, then start queued jobs in submission order as their
        keys' running quota allows."""
        with self.lock:
            for job_id, ref in list(self.refs.items()):
                if ray.wait([ref], timeout=0)[0]:
                    del self.refs[job_id]
                    self._finish(self.jobs[job_id], ref)
            running = self._count("running")
            for job in sorted(self._with("queued"), key=lambda j: j["submitted"]):
                if running.get(job["owner"], 0) < self.running_per_key:
                    self._launch(job)
                    running[job["owner"]] = running.get(job["owner"], 0) + 1

    def _finish(self, job: dict, ref: ray.ObjectRef) -> None:
        job["finished"] = _now()
        try:
            job.update(_finite(ray.get(ref)), status="succeeded")
        except Exception as err:  # the job's failure is its status, not the service's
            cause = getattr(err, "cause", None) or err  # a task's own error, no trace
            job.update(status="failed",
                       error=scrub_paths(f"{type(cause).__name__}: {cause}")[:2000])
        self._save(job)

    def _launch(self, job: dict) -> None:
        out = self.results_dir / job["id"]
        self.refs[job["id"]] = _run_backtest.remote(job["model_path"], job["request"], str(out))
        job.update(status="running", started=_now())
        self._save(job)

    def _with(self, status: str) -> list[dict]:
        return [j for j in self.jobs.values() if j["status"] == status]

    def _count(self, status: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self._with(status):
            counts[job["owner"]] = counts.get(job["owner"], 0) + 1
        return counts

    def start(self, model_path: str, model_id: str, request: dict, owner: str) -> dict:
        """Queue a job for ``owner`` (an API key id); a refusal when its quota is full."""
        with self.lock:
            if self._count("queued").get(owner, 0) >= self.queued_per_key:
                return {"refused": f"this key has {self.queued_per_key} backtests queued (its "
                        f"limit, beside {self.running_per_key} running); retry when one starts"}
            job = {"id": uuid.uuid4().hex[:12], "status": "queued", "model_id": model_id,
                   "submitted": _now(), "owner": owner, "model_path": model_path,
                   "request": request}
            self.jobs[job["id"]] = job
            self._save(job)
        self.tick()
        return self.public(job)

    def status(self, job_id: str, owner: str) -> dict | None:
        """A job of ``owner``'s (None for an unknown job or another key's)."""
        self.tick()
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job["owner"] != owner:
                return None
            return self.public(job)

    def public(self, job: dict) -> dict:
        """What a client sees: no request (it holds server paths), no owner."""
        out = {k: job[k] for k in PUBLIC if k in job}
        if job["status"] == "queued":
            ahead = [j for j in self._with("queued") if j["submitted"] < job["submitted"]]
            out["position"] = len(ahead)
        return out
