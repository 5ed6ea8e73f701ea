"""Everything a request passes before a route runs: its key, the scope its route needs,
its size, and (for a state-changing route) a line in the audit log.

One table, ``ROUTES``, says which scope each /v1 route needs and which are audited; a test
checks it covers every route the app has, so a new route cannot ship unscoped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving.auth import API_KEY_HEADER, KeyFile, KeyFileError, KeyRing, Principal

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body accepted (a 20,000-bar, 3-asset request is about 6 MB)."""
MAX_AUDITED_BODY = 64 * 1024
REDACTED = ("key", "secret", "api_key", "password", "token")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    scope: str
    audited: bool = False
    pattern: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    def match(self, method: str, path: str) -> dict[str, str] | None:
        found = self.pattern.match(path) if method == self.method else None
        return None if found is None else found.groupdict()


ROUTES = (
    Route("GET", "/v1/models", "read"),
    Route("PUT", "/v1/models", "admin", audited=True),
    Route("POST", "/v1/signals", "read"),
    Route("POST", "/v1/risk", "read"),
    Route("POST", "/v1/chat", "read"),
    Route("GET", "/v1/live/{session_id}", "read"),
    Route("POST", "/v1/live", "trade", audited=True),
    Route("POST", "/v1/live/{session_id}/stop", "trade", audited=True),
    Route("POST", "/v1/live/{session_id}/flatten", "trade", audited=True),
    Route("POST", "/v1/backtests", "backtest", audited=True),
    Route("GET", "/v1/backtests/{job_id}", "backtest"),
    Route("GET", "/v1/admin/keys", "admin"),
    Route("POST", "/v1/admin/keys", "admin", audited=True),
    Route("DELETE", "/v1/admin/keys/{key_id}", "admin", audited=True),
)


def route_of(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in ROUTES:
        params = route.match(method, path)
        if params is not None:
            return route, params
    return None


class KeySource:
    """The accepted keys, re-read when the key file changes (a revoked key stops working
    at its next request, on every replica). A key file broken by hand keeps the last good
    keys and logs why: a typo must not lock everyone out or take the service down."""

    def __init__(self, key_file: str | None, legacy: tuple[str, ...] = (),
                 legacy_scopes: tuple[str, ...] = ("read", "backtest")) -> None:
        self.file = KeyFile(key_file) if key_file else None
        self.legacy, self.legacy_scopes = tuple(legacy), tuple(legacy_scopes)
        self.stamp: tuple | None = None
        self.ring = KeyRing(legacy=self.legacy, legacy_scopes=self.legacy_scopes)
        self.current()

    def current(self) -> KeyRing:
        if self.file is None:
            return self.ring
        try:
            st = self.file.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self.stamp:
            try:
                self.ring = self.file.ring(self.legacy, self.legacy_scopes)
                self.stamp = stamp
            except KeyFileError as err:
                log.error("keeping the previous keys: %s", err)
        return self.ring


class AuditLog:
    """Append-only JSON lines, one per state-changing request: time, key id (never the
    secret), route, parameters and outcome. Each line is one ``write`` on a file opened
    with O_APPEND (so replicas sharing the file never interleave inside a line) and is
    fsynced before the response leaves."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def redact(value: Any) -> Any:
    """Request parameters for the audit log with anything secret-looking removed."""
    if isinstance(value, dict):
        return {k: "<redacted>" if k.lower() in REDACTED else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value[:50]]
    if isinstance(value, str) and len(value) > 500:
        return value[:500] + "..."
    return value


class RateLimiter:
    """A token bucket per API key: ``per_minute`` requests on average, up to ``burst`` at
    once; ``per_minute <= 0`` means no limit. Per replica: N Gateway replicas allow N times
    the rate."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate, self.burst = per_minute / 60.0, float(max(burst, 1))
        self.buckets: dict[str, tuple[float, float]] = {}

    def wait_s(self, key: str) -> float:
        """0 when the request may go now (and takes a token), else seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, then = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens >= 1.0:
            self.buckets[key] = (tokens - 1.0, now)
            return 0.0
        self.buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


def error_body(status: int, code: str, message: str, details: list | None = None,
               headers: dict[str, str] | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, headers=headers,
                        content={"code": code, "message": message, "details": details or []})


class Guard:
    """Pure ASGI middleware (Starlette's BaseHTTPMiddleware costs a task and a copy per
    request). Every /v1 request needs a valid key, checked before the body is read, so an
    anonymous caller learns nothing about the schema; then its route's scope (403 naming
    the missing scope); bodies over MAX_BODY_BYTES are refused from their Content-Length.
    The caller's Principal goes to the route in ``request.state.principal``.

    The service's ``app.state`` holds ``keys`` (a KeySource) and ``audit`` (an AuditLog
    or None)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        headers = dict(scope["headers"])
        key = headers.get(API_KEY_HEADER.lower().encode(), b"").decode("latin-1")
        who = state.keys.current().authenticate(key)
        found = route_of(scope["method"], scope["path"])
        route, params = found if found is not None else (None, {})
        refusal = _refusal(who, route, headers.get(b"content-length"))
        audit = getattr(state, "audit", None) if route is not None and route.audited else None
        if refusal is not None:
            if audit is not None:
                audit.write(_audit_record(who, route, params, None, refusal.status_code,
                                          json.loads(refusal.body)))
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = who
        if audit is None:
            await self.app(scope, receive, send)
            return
        await self._audited(scope, receive, send, audit, who, route, params)

    async def _audited(self, scope, receive, send, audit: AuditLog, who: Principal,
                       route: Route, params: dict) -> None:
        sent: dict[str, Any] = {"status": 500, "body": b""}
        received = bytearray()

        async def recording_receive():
            message = await receive()
            if message["type"] == "http.request" and len(received) < MAX_AUDITED_BODY:
                received.extend(message.get("body", b"")[: MAX_AUDITED_BODY - len(received)])
            return message

        async def recording_send(message):
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
            elif message["type"] == "http.response.body" and len(sent["body"]) < MAX_AUDITED_BODY:
                sent["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        finally:
            try:
                answer = json.loads(sent["body"] or b"{}")
            except ValueError:
                answer = {}
            try:
                body = json.loads(received) if received else {}
            except ValueError:
                body = {"unparsed_bytes": len(received)}
            audit.write(_audit_record(who, route, params, body, sent["status"], answer))


def _refusal(who: Principal | None, route: Route | None, length: bytes | None):
    if who is None:
        return error_body(401, "unauthorized", f"a valid {API_KEY_HEADER} header is required")
    if route is not None and route.scope not in who.scopes:
        return error_body(403, "forbidden", f"this key lacks the {route.scope!r} scope "
                          f"that {route.method} {route.path} needs",
                          [{"missing_scope": route.scope}])
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        return error_body(413, "payload_too_large",
                          f"request bodies are limited to {MAX_BODY_BYTES} bytes")
    return None


def _audit_record(who: Principal | None, route: Route, params: dict, body: Any, status: int,
                  answer: Any) -> dict[str, Any]:
    answer = answer if isinstance(answer, dict) else {}
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "key_id": None if who is None else who.key_id,
        "route": f"{route.method} {route.path}",
        "params": redact({**params, **(body if isinstance(body, dict) else {"body": body})}),
        "status": status,
        "outcome": "ok" if status < 400 else answer.get("code", "error"),
        "id": answer.get("id"),
    }


def confine(root: Path | None, name: str, what: str) -> Path:
    """``name`` (a relative name from a request) resolved under ``root``, or ValueError
    with a message that names only what the client sent: no ``..``, no absolute path, no
    symlink that leads out of the root, nothing that does not exist."""
    if root is None:
        raise PermissionError(f"this service reads no {what} named by requests (no root)")
    if name.startswith(("/", "~")):
        raise ValueError(f"a {what} is named relative to the service's root, not by an "
                         "absolute path")
    if not name or "\\" in name or "\x00" in name \
            or any(p in ("..", ".") for p in name.split("/")):
        raise ValueError(f"{what} {name!r} is not a plain relative name")
    base = Path(root).resolve()
    try:
        path = (base / name).resolve(strict=True)
    except (OSError, RuntimeError) as err:
        raise FileNotFoundError(f"no {what} {name!r}") from err
    if not path.is_relative_to(base):
        raise FileNotFoundError(f"no {what} {name!r}")
    return path
