"""API keys: where they come from, and a constant-time check.

Keys are read by the process that builds the app (``QUANTUM_API_KEYS``, comma
separated, or a secrets file named by ``QUANTUM_API_KEYS_FILE``, one key per line)
and only their SHA-256 digests travel into the Serve application's arguments, so a
Serve config, the dashboard or a log line never holds a usable key. Each request's key
is hashed and compared with every digest by ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

API_KEY_HEADER = "X-API-Key"
MIN_KEY_LENGTH = 16


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load_key_digests(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """SHA-256 digests of the configured keys; a clear error when there are none."""
    env = os.environ if environ is None else environ
    keys = [k.strip() for k in env.get("QUANTUM_API_KEYS", "").split(",") if k.strip()]
    path = env.get("QUANTUM_API_KEYS_FILE")
    if path:
        lines = Path(path).read_text().splitlines()
        keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not keys:
        raise ValueError(
            "no API keys: set QUANTUM_API_KEYS (comma-separated) or QUANTUM_API_KEYS_FILE "
            "(one key per line) before starting the service"
        )
    short = sum(len(k) < MIN_KEY_LENGTH for k in keys)
    if short:
        raise ValueError(f"{short} API key(s) shorter than {MIN_KEY_LENGTH} characters")
    return tuple(digest(k) for k in keys)


def key_matches(key: str | None, digests: tuple[str, ...]) -> bool:
    """Constant-time comparison against every configured digest (no early exit)."""
    if not key:
        return False
    candidate = digest(key)
    found = False
    for known in digests:
        found |= hmac.compare_digest(candidate, known)
    return found
