"""A real two-node Ray cluster on loopback: a head and a worker node, each a `ray start`
process with its own CPUs, ports and temp dir, as `ray up` would give on two machines.

Kept apart from the session's local Ray instance: every port is chosen free, each node
has its own temp dir (so `ray.init()` elsewhere never finds this cluster through
/tmp/ray/ray_current_cluster), and teardown kills only this cluster's processes (never
`ray stop`, which would kill every Ray process on the machine). Teardown runs even when
the test fails and also sweeps any process whose command line names the cluster's temp
dir (workers the raylets started).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.integration.serving_fixtures import free_port

RAY = str(Path(sys.executable).parent / "ray")


def _node_ports() -> list[str]:
    """Fixed (not default) ports for everything a node binds, so two nodes on one host
    and the session's Ray instance never collide."""
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        "--object-store-memory=500000000",
    ]


@dataclass
class LocalCluster:
    root: Path
    gcs_port: int
    dashboard_port: int
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    """This cluster's own auth token (Ray enables token auth on new clusters)."""
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment the nodes (and so the jobs' drivers) run with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update({"WANDB_MODE": "offline", "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token})
        env.pop("WANDB_API_KEY", None)
        return env

    def _start(self, args: list[str], name: str) -> None:
        log = (self.root / f"{name}.log").open("w")
        command = [RAY, "start", "--block", "--node-ip-address=127.0.0.1", *args]
        process = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)

    def start(self, head_cpus: int = 1, worker_cpus: int = 1, timeout: float = 120) -> None:
        self._start(
            ["--head", f"--port={self.gcs_port}", f"--num-cpus={head_cpus}",
             "--include-dashboard=true", "--dashboard-host=127.0.0.1",
             f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={free_port()}",
             f"--temp-dir={self.root / 'head'}", *_node_ports()],
            "head",
        )
        self._wait(lambda: self.nodes(), timeout, "the head node")
        self._start(
            [f"--address=127.0.0.1:{self.gcs_port}", f"--num-cpus={worker_cpus}",
             f"--temp-dir={self.root / 'worker'}", *_node_ports()],
            "worker",
        )
        self._wait(lambda: len(self.nodes()) == 2, timeout, "the worker node")

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.processes:
                if p.poll() is not None:
                    raise RuntimeError(f"ray start exited ({p.returncode}):\n{self.logs()}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"{what} did not come up:\n{self.logs()}")

    def nodes(self) -> list[dict]:
        """Alive nodes, from the dashboard's state API: node_id, resources."""
        url = f"{self.dashboard}/api/v0/nodes?detail=1&limit=100"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.load(response)
        rows = body["data"]["result"]["result"]
        return [r for r in rows if r.get("state") == "ALIVE"]

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        for p in reversed(self.processes):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        marker = str(self.root)
        strays = [
            proc
            for proc in psutil.process_iter(["cmdline"])
            if any(marker in part for part in (proc.info["cmdline"] or []))
        ]
        for proc in strays:
            proc.kill()
        psutil.wait_procs(strays, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def local_cluster() -> LocalCluster:
    """A not yet started cluster in a short temp dir (Ray's socket paths must stay under
    the 107-character limit for unix sockets)."""
    root = Path(tempfile.mkdtemp(prefix="qc-", dir="/tmp"))
    return LocalCluster(root, free_port(), free_port())
