"""Serve's direct ingress: clients talk to the ingress replica's own HTTP port.

Why: on a 2-core box the proxy hop costs about 8 ms and 5 ms of CPU per request (see
README, Benchmarks); with direct ingress the Gateway replica runs its own uvicorn server
and the signal path has no Ray RPC at all. Serve reads the switches from the environment
when its modules are imported, in the driver and in every Serve actor, so they must be
set before Ray starts; a cluster reached through RAY_ADDRESS needs them in its own
environment (the generated Serve config cannot carry them).

The proxy port keeps working either way, so health checks and older clients are fine.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

DEFAULT_PORTS = (30000, 30999)


@dataclass(frozen=True)
class DirectIngress:
    """The port range the ingress replicas take their HTTP ports from, both ends included.

    Serve's own MAX variable is exclusive (its pool is ``range(MIN, MAX)``), so a range of
    one port, e.g. for a test, is ``DirectIngress(p, p)`` here and MAX=p+1 for Serve.
    """

    min_port: int = DEFAULT_PORTS[0]
    max_port: int = DEFAULT_PORTS[1]

    def __post_init__(self) -> None:
        if not 0 < self.min_port <= self.max_port < 65535:
            raise ValueError(f"bad direct-ingress port range {self.min_port}-{self.max_port}")

    def environment(self) -> dict[str, str]:
        """The variables Serve reads at import time to run in this mode."""
        return {
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(self.min_port),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(self.max_port + 1),
        }

    def enable(self) -> None:
        """Set the variables in this process, so a Ray instance started here inherits them.

        Raises when Ray or Serve is already loaded here: Serve would keep the values it
        read at import, and the flag would silently do nothing.
        """
        import sys

        if "ray.serve" in sys.modules:
            raise RuntimeError("direct ingress must be enabled before ray.serve is imported")
        os.environ.update(self.environment())


def direct_urls(host: str, ingress: DirectIngress, app_name: str = "quantum",
                timeout_s: float = 120.0) -> list[str]:
    """The base URLs of the application's ingress replicas on their direct ports.

    Asks the Serve controller for the app's HTTP target groups (the same call Serve's own
    HAProxy integration uses; Ray 2.60 has no public wrapper: serving.serve_compat) and
    keeps targets whose port lies in the direct range, since before a replica is running
    the controller answers with the proxy's target instead. Waits up to ``timeout_s`` for
    one to appear.
    """
    from serving.serve_compat import http_target_ports, serve_controller

    controller = serve_controller()
    deadline = time.monotonic() + timeout_s
    while True:
        ports = sorted(
            port
            for port in http_target_ports(app_name, controller)
            if ingress.min_port <= port <= ingress.max_port
        )
        if ports or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return [f"http://{shown}:{port}" for port in ports]
