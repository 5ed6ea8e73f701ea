"""API keys (digests only, constant-time check) and the generated Serve config file."""

import pytest
import yaml

from serving.auth import key_matches, load_key_digests
from serving.cli import serve_config


def test_keys_come_from_the_environment_or_a_file_and_only_digests_leave(tmp_path):
    secrets = tmp_path / "keys"
    secrets.write_text("# team keys\nfile-key-0123456789abcdef\n\n")

    digests = load_key_digests(
        {"QUANTUM_API_KEYS": "env-key-0123456789abcdef, other-key-0123456789ab",
         "QUANTUM_API_KEYS_FILE": str(secrets)}
    )

    assert len(digests) == 3
    assert all("key" not in d for d in digests)  # sha256 hex, not the keys
    assert key_matches("file-key-0123456789abcdef", digests)
    assert key_matches("env-key-0123456789abcdef", digests)
    assert not key_matches("file-key-0123456789abcdeX", digests)
    assert not key_matches("", digests) and not key_matches(None, digests)


def test_missing_or_short_keys_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="QUANTUM_API_KEYS"):
        load_key_digests({})
    with pytest.raises(ValueError, match="shorter than 16"):
        load_key_digests({"QUANTUM_API_KEYS": "short"})


def test_the_written_serve_config_is_valid_for_serve_deploy():
    from ray.serve.schema import ServeDeploySchema

    config = serve_config("runs/first", "127.0.0.1", 8000, 2)

    schema = ServeDeploySchema.model_validate(yaml.safe_load(yaml.safe_dump(config)))
    (app,) = schema.applications
    assert app.import_path == "serving.app:build_app"
    assert app.args == {"model_path": "runs/first", "replicas": 2}
    assert schema.http_options.host == "127.0.0.1"
