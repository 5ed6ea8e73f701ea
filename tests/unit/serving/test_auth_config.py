"""API keys (scoped key file of salted digests, legacy plain keys, constant-time check), the
route/scope table, path confinement, the audit log, and the generated Serve config file."""

import json
import threading

import pytest
import yaml

from serving.auth import (
    SCOPES,
    KeyFile,
    KeyFileError,
    KeyRing,
    legacy_digests,
    legacy_scopes,
    parse_scopes,
)
from serving.cli import serve_config
from serving.guard import ROUTES, AuditLog, RateLimiter, confine, redact, route_of


def test_plain_keys_come_from_the_environment_or_a_file_and_only_digests_leave(tmp_path):
    secrets = tmp_path / "keys"
    secrets.write_text("# team keys\nfile-key-0123456789abcdef\n\n")

    digests = legacy_digests(
        {"QUANTUM_API_KEYS": "env-key-0123456789abcdef, other-key-0123456789ab",
         "QUANTUM_API_KEYS_FILE": str(secrets)}
    )
    ring = KeyRing(legacy=digests)

    assert len(digests) == 3
    assert all("key" not in d for d in digests)  # sha256 hex, not the keys
    who = ring.authenticate("file-key-0123456789abcdef")
    assert who is not None and who.scopes == {"read", "backtest"}
    assert who.key_id.startswith("env-") and "file-key" not in who.key_id
    assert ring.authenticate("env-key-0123456789abcdef") is not None
    assert ring.authenticate("file-key-0123456789abcdeX") is None
    assert ring.authenticate("") is None and ring.authenticate(None) is None


def test_short_keys_and_unknown_scopes_are_refused_with_a_clear_error():
    assert legacy_digests({}) == ()
    with pytest.raises(ValueError, match="shorter than 16"):
        legacy_digests({"QUANTUM_API_KEYS": "short"})
    with pytest.raises(ValueError, match=r"unknown scope.*'root'"):
        parse_scopes("read,root")
    with pytest.raises(ValueError, match="at least one scope"):
        parse_scopes(" , ")
    assert legacy_scopes({"QUANTUM_API_KEY_SCOPES": "trade,read"}) == ("read", "trade")
    assert not KeyRing()


def test_a_key_file_holds_salted_digests_with_scopes_and_revocation_takes_effect(tmp_path):
    keys = KeyFile(tmp_path / "state" / "keys.json")
    reader, secret_r = keys.add("dashboard", "read")
    trader, secret_t = keys.add("bot", ["trade", "read"])

    text = keys.path.read_text()
    assert secret_r not in text and secret_t not in text
    assert secret_r.split("_")[2] not in text  # not even the random part
    assert oct(keys.path.stat().st_mode & 0o777) == "0o600"
    ring = keys.ring()
    assert ring.authenticate(secret_r).scopes == {"read"}
    assert ring.authenticate(secret_t).scopes == {"read", "trade"}
    assert ring.authenticate(secret_t).key_id == trader.id
    forged = secret_t[:-1] + ("A" if secret_t[-1] != "A" else "B")
    assert ring.authenticate(forged) is None
    other_id = f"qk_{reader.id}_{secret_t.split('_', 2)[2]}"  # right secret, wrong id
    assert ring.authenticate(other_id) is None

    keys.revoke(trader.id)

    ring = keys.ring()
    assert ring.authenticate(secret_t) is None
    assert ring.authenticate(secret_r) is not None
    listed = {r.id: r.public() for r in keys.records().values()}
    assert listed[trader.id]["revoked"] is not None and "digest" not in listed[trader.id]
    with pytest.raises(KeyFileError, match="no key 'nope'"):
        keys.revoke("nope")
    with pytest.raises(KeyFileError, match="key name"):
        keys.add("../etc", "read")


def test_concurrent_key_writers_lose_no_key(tmp_path):
    keys = KeyFile(tmp_path / "keys.json")
    made: list[str] = []

    def add(i):
        made.append(keys.add(f"k{i}", "read")[0].id)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(keys.records()) == sorted(made) and len(made) == 12


def test_a_broken_key_file_is_a_clear_error(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text('{"version": 1, "keys": [{"id": 1}]')
    with pytest.raises(KeyFileError, match="not readable"):
        KeyFile(path).records()


def test_every_route_of_the_app_has_a_scope():
    from serving.app import api

    served = {(m.upper(), path) for path, ops in api.openapi()["paths"].items()
              if path.startswith("/v1/") for m in ops}
    table = {(r.method, r.path) for r in ROUTES}
    assert served == table
    assert {r.scope for r in ROUTES} <= set(SCOPES)
    assert {r.path for r in ROUTES if r.scope == "trade"} == {
        "/v1/live", "/v1/live/{session_id}/stop", "/v1/live/{session_id}/flatten"}
    assert all(r.audited for r in ROUTES if r.method in ("PUT", "DELETE")
               or (r.method == "POST"
                   and r.path not in ("/v1/signals", "/v1/risk", "/v1/chat")))
    route, params = route_of("POST", "/v1/live/abc/stop")
    assert route.scope == "trade" and params == {"session_id": "abc"}
    assert route_of("GET", "/v1/live/a/b") is None


def test_paths_stay_under_their_root(tmp_path):
    root = tmp_path / "data"
    (root / "stores" / "binance").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "inside").symlink_to(root / "stores")

    assert confine(root, "stores/binance", "store") == (root / "stores" / "binance").resolve()
    assert confine(root, "inside", "store") == (root / "stores").resolve()
    for bad in ("../secret", "stores/../../secret", "/etc", str(outside), ".", "", "a\\b",
                "stores/./binance"):
        with pytest.raises(ValueError) as err:
            confine(root, bad, "store")
        assert str(tmp_path) not in str(err.value)
    for missing in ("escape", "escape/x", "nothing", "%2e%2e%2fsecret"):
        with pytest.raises(FileNotFoundError) as err:
            confine(root, missing, "store")
        assert str(tmp_path) not in str(err.value)
    with pytest.raises(PermissionError):
        confine(None, "stores", "store")


def test_audit_lines_are_appended_whole_and_carry_no_secret(tmp_path):
    audit = AuditLog(tmp_path / "state" / "audit.jsonl")
    params = redact({"name": "bot", "secret": "qk_x_y", "nested": {"api_key": "k"}})

    def write(i):
        for j in range(50):
            audit.write({"i": i, "j": j, "params": params, "pad": "x" * 2000})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    lines = audit.path.read_text().splitlines()
    assert len(lines) == 200 and all(json.loads(line)["pad"] == "x" * 2000 for line in lines)
    assert "qk_x_y" not in audit.path.read_text()
    assert json.loads(lines[0])["params"] == {"name": "bot", "secret": "<redacted>",
                                              "nested": {"api_key": "<redacted>"}}
    assert audit.path.stat().st_mode & 0o077 == 0


def test_the_rate_limiter_refills_and_zero_means_no_limit(monkeypatch):
    import serving.guard as guard

    now = [100.0]
    monkeypatch.setattr(guard.time, "monotonic", lambda: now[0])
    limit = RateLimiter(per_minute=60, burst=2)
    assert limit.wait_s("a") == 0 and limit.wait_s("a") == 0
    assert limit.wait_s("a") == pytest.approx(1.0)
    assert limit.wait_s("b") == 0  # per key
    now[0] += 1.0
    assert limit.wait_s("a") == 0
    unlimited = RateLimiter(per_minute=0, burst=1)
    assert all(unlimited.wait_s("a") == 0 for _ in range(100))


def test_the_written_serve_config_is_valid_for_serve_deploy():
    from ray.serve.schema import ServeDeploySchema

    config = serve_config("runs/first", "127.0.0.1", 8000, 2, {"state_dir": "/srv/state"})

    schema = ServeDeploySchema.model_validate(yaml.safe_load(yaml.safe_dump(config)))
    (app,) = schema.applications
    assert app.import_path == "serving.app:build_app"
    assert app.args == {"model_path": "runs/first", "replicas": 2, "state_dir": "/srv/state"}
    assert schema.http_options.host == "127.0.0.1"
