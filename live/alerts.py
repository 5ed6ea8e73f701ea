"""Where a session's alerts go: the log always; W&B and a webhook when configured.

A webhook gets one JSON object per alert (``POST``, ``Content-Type: application/json``).
Delivery failures are logged and never stop the session: an alert path that can take
trading down is a second failure, not a safeguard.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("quantum.live")


@dataclass
class Alerts:
    session: str
    webhook: str | None = None
    timeout_s: float = 5.0
    sinks: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    """Extra receivers (the session's W&B run)."""

    def send(self, kind: str, message: str, **fields: Any) -> dict[str, Any]:
        alert = {"session": self.session, "kind": kind, "message": message,
                 "time": time.time(), **fields}
        log.warning("ALERT %s: %s", kind, message)
        for sink in self.sinks:
            try:
                sink(alert)
            except Exception as err:  # an alert sink must never stop trading
                log.error("alert sink failed: %s", err)
        if self.webhook:
            self._post(alert)
        return alert

    def _post(self, alert: dict[str, Any]) -> None:
        body = json.dumps(alert).encode()
        request = urllib.request.Request(
            self.webhook, data=body, headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except OSError as err:
            log.error("alert webhook %s failed: %s", _redacted(self.webhook), err)


def _redacted(url: str) -> str:
    """The webhook without its path and query (they often hold a token)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}/..."
