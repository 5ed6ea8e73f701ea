"""Scoped API keys: a key file of salted digests, and the check every request passes.

A key is ``qk_<id>_<secret>``: the id names it in the key file, the audit log and
`quantum keys list` without revealing it; only ``HMAC-SHA256(salt, key)`` is stored, so
the key file, a Serve config or a log line never holds a usable key. The secret is shown
once, when the key is made.

Scopes (a key holds any set of them; none implies another):

- ``read``      signals, models, risk, live status, chat
- ``backtest``  submit backtest jobs and read them
- ``trade``     start, stop and flatten live sessions
- ``admin``     model swap and key management

Keys from ``QUANTUM_API_KEYS`` / ``QUANTUM_API_KEYS_FILE`` (plain keys, as before key
files existed) still work, with the scopes of ``QUANTUM_API_KEY_SCOPES`` (default
``read,backtest``): trading and administration need a key from a key file.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

API_KEY_HEADER = "X-API-Key"
SCOPES = ("read", "backtest", "trade", "admin")
LEGACY_SCOPES = ("read", "backtest")
KEY_PATTERN = re.compile(r"^qk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
MIN_KEY_LENGTH = 16
KEY_FILE_VERSION = 1


class KeyFileError(ValueError):
    """A key file that cannot be used, or a key operation that cannot be done."""


def parse_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes in their canonical order; a clear error naming any unknown one."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    wanted = {s.strip() for s in items if s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise KeyFileError(f"unknown scope(s) {unknown}: the scopes are {list(SCOPES)}")
    if not wanted:
        raise KeyFileError(f"a key needs at least one scope of {list(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)


def digest(key: str) -> str:
    """SHA-256 of a plain (legacy) key: what a Serve config may carry instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def _mac(salt: str, key: str) -> str:
    return hmac.new(bytes.fromhex(salt), key.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """One key as the key file holds it (never its secret)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    salt: str
    digest: str
    created: str
    revoked: str | None = None

    def public(self) -> dict:
        """What `quantum keys list` and GET /v1/admin/keys show."""
        return {"id": self.id, "name": self.name, "scopes": list(self.scopes),
                "created": self.created, "revoked": self.revoked}


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: the key's id (for the audit log) and its scopes."""

    key_id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class KeyRing:
    """The keys a service accepts: key-file records and legacy plain-key digests.

    ``authenticate`` costs one HMAC and one constant-time comparison for a key-file key
    (an unknown id is compared against a dummy digest, so timing does not say whether an
    id exists) and a comparison with every legacy digest, without early exit."""

    records: Mapping[str, KeyRecord] = field(default_factory=dict)
    legacy: tuple[str, ...] = ()
    legacy_scopes: tuple[str, ...] = LEGACY_SCOPES

    def __bool__(self) -> bool:
        return bool(self.legacy) or any(r.revoked is None for r in self.records.values())

    def authenticate(self, key: str | None) -> Principal | None:
        if not key:
            return None
        match = KEY_PATTERN.match(key)
        if match is not None:
            record = self.records.get(match.group(1))
            salt, known = (record.salt, record.digest) if record else ("00" * 16, "0" * 64)
            ok = hmac.compare_digest(_mac(salt, key), known)
            if ok and record is not None and record.revoked is None:
                return Principal(record.id, frozenset(record.scopes))
            return None
        candidate = digest(key)
        found = None
        for known in self.legacy:
            if hmac.compare_digest(candidate, known):
                found = known
        if found is None:
            return None
        return Principal(f"env-{found[:8]}", frozenset(self.legacy_scopes))


class KeyFile:
    """The key file (JSON, mode 0600): made, listed and revoked by `quantum keys` and the
    admin routes. Writers hold an exclusive lock and replace the file atomically, so two
    writers never lose each other's change and a reader sees the old or the new file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def records(self) -> dict[str, KeyRecord]:
        if not self.path.exists():
            return {}
        try:
            payload = json.loads(self.path.read_text())
            if payload.get("version") != KEY_FILE_VERSION:
                raise ValueError(f"version {payload.get('version')!r}")
            records = [KeyRecord(**{**r, "scopes": tuple(r["scopes"])}) for r in payload["keys"]]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            raise KeyFileError(f"the key file {self.path} is not readable: {err}") from err
        return {r.id: r for r in records}

    def ring(self, legacy: tuple[str, ...] = (), legacy_scopes: Iterable[str] = LEGACY_SCOPES
             ) -> KeyRing:
        return KeyRing(self.records(), tuple(legacy), tuple(legacy_scopes))

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(f".{self.path.name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self.records()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, records: Mapping[str, KeyRecord]) -> None:
        from live.journal import write_json_atomic

        keys = [{**r.__dict__, "scopes": list(r.scopes)} for r in records.values()]
        write_json_atomic(self.path, {"version": KEY_FILE_VERSION, "keys": keys})

    def add(self, name: str, scopes: str | Iterable[str]) -> tuple[KeyRecord, str]:
        """A new key: its record and its secret (shown once, stored nowhere)."""
        wanted = parse_scopes(scopes)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.@-]{0,63}", name):
            raise KeyFileError("a key name is 1-64 letters, digits, spaces or _.@-")
        with self._locked() as records:
            key_id = secrets.token_hex(6)
            while key_id in records:
                key_id = secrets.token_hex(6)
            secret = f"qk_{key_id}_{secrets.token_urlsafe(32)}"
            salt = secrets.token_hex(16)
            record = KeyRecord(key_id, name, wanted, salt, _mac(salt, secret),
                               datetime.now(UTC).isoformat(timespec="seconds"))
            self._write({**records, key_id: record})
        return record, secret

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key (kept in the file, marked, so the audit trail still names it)."""
        with self._locked() as records:
            record = records.get(key_id)
            if record is None:
                raise KeyFileError(f"no key {key_id!r}")
            if record.revoked is None:
                record = KeyRecord(**{**record.__dict__,
                                      "revoked": datetime.now(UTC).isoformat(timespec="seconds")})
                self._write({**records, key_id: record})
        return record


def legacy_digests(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """SHA-256 digests of the plain keys in QUANTUM_API_KEYS / QUANTUM_API_KEYS_FILE."""
    env = os.environ if environ is None else environ
    keys = [k.strip() for k in env.get("QUANTUM_API_KEYS", "").split(",") if k.strip()]
    path = env.get("QUANTUM_API_KEYS_FILE")
    if path:
        lines = Path(path).read_text().splitlines()
        keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    short = sum(len(k) < MIN_KEY_LENGTH for k in keys)
    if short:
        raise KeyFileError(f"{short} API key(s) shorter than {MIN_KEY_LENGTH} characters")
    return tuple(digest(k) for k in keys)


def legacy_scopes(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    env = os.environ if environ is None else environ
    return parse_scopes(env.get("QUANTUM_API_KEY_SCOPES", ",".join(LEGACY_SCOPES)))
