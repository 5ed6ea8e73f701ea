"""`quantum serve`: the Serve application on a local Ray instance (or RAY_ADDRESS), bound to
loopback by default; `--write-config` writes the same application as a Serve config file
for `serve deploy` / `serve run` on a cluster."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

console = Console()
EXCHANGE_HELP = "Exchange of the --data-path store (default: the only one it holds)."


def store_exchange(data_path: Path | None, exchange: str | None) -> str | None:
    """The exchange to read from the store at ``data_path``: ``exchange`` if it holds its
    bars, else its only one (market.loader.choose_exchange); None without a store."""
    from market.loader import choose_exchange
    from market.store import ParquetStore

    if data_path is None:
        if exchange is not None:
            raise ValueError(f"--exchange {exchange} names an exchange of a store: give the "
                             "store with --data-path")
        return None
    return choose_exchange(ParquetStore(data_path), exchange)


def serve_config(model_path: str, host: str, port: int, replicas: int,
                 extra: dict | None = None) -> dict:
    """A Serve config (the schema `serve deploy` reads) for this application. Keys are not
    in it: the cluster's environment provides QUANTUM_API_KEYS / QUANTUM_API_KEYS_FILE."""
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": host, "port": port},
        "applications": [
            {
                "name": "quantum",
                "route_prefix": "/",
                "import_path": "serving.app:build_app",
                "args": {"model_path": model_path, "replicas": replicas, **(extra or {})},
            }
        ],
    }


def serve_command(
    model_path: Annotated[Path, typer.Option(help="Run folder or checkpoint to serve.")],
    host: Annotated[str, typer.Option(help="Bind address (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    replicas: Annotated[int, typer.Option(help="Policy replicas.")] = 1,
    write_config: Annotated[
        Path | None, typer.Option(help="Write the Serve config file for `serve deploy` and exit.")
    ] = None,
    direct_ingress: Annotated[
        bool,
        typer.Option(
            help="Also serve on the ingress replica's own port (Serve's direct "
            "ingress; about 2.5x the throughput of the proxy path here)."
        ),
    ] = False,
    direct_ports: Annotated[
        str, typer.Option(help="Port range MIN-MAX (both included) for --direct-ingress replicas.")
    ] = "30000-30999",
    chat_model_path: Annotated[
        Path | None,
        typer.Option(help="Also serve the chatbot (POST /v1/chat): model or LoRA adapter folder."),
    ] = None,
    chat_base_model: Annotated[
        Path | None, typer.Option(help="The chatbot adapter's base model (default: its config's).")
    ] = None,
    data_path: Annotated[
        Path | None, typer.Option(help="Market store that keeps the chatbot's facts live.")
    ] = None,
    exchange: Annotated[str | None, typer.Option(help=EXCHANGE_HELP)] = None,
    live_dir: Annotated[
        Path | None, typer.Option(help="Folder of `quantum live` session folders: their status "
                                  "at /v1/live/{id}, their accounts as account_id in signals.")
    ] = None,
    state_dir: Annotated[
        Path, typer.Option(help="The service's state: key file (keys.json), audit log "
                           "(audit.jsonl), backtest job queue, swapped-model choice. Shared "
                           "storage on a multi-node cluster.")
    ] = Path("serve-state"),
    key_file: Annotated[
        Path | None, typer.Option(help="Scoped key file (default: STATE_DIR/keys.json; "
                                  "`quantum keys add` makes keys).")
    ] = None,
    data_root: Annotated[
        Path | None, typer.Option(help="Stores that backtest requests may name (by relative "
                                  "name); none: only synthetic markets and the model's own.")
    ] = None,
    model_root: Annotated[
        Path | None, typer.Option(help="Trained runs that PUT /v1/models may swap to.")
    ] = None,
    signals_per_minute: Annotated[
        float, typer.Option(help="Signal requests per minute per key (0: no limit).")
    ] = 6000.0,
    backtests_per_key: Annotated[
        int, typer.Option(help="Backtests one key may run at once (more wait in its queue).")
    ] = 2,
) -> None:
    """Serve trading signals, backtests and paper sessions (and the chatbot) over HTTP
    until interrupted."""
    from rl.cli_input import user_errors
    from serving.auth import KeyFile, KeyFileError, legacy_digests, legacy_scopes

    with user_errors():
        venue = store_exchange(data_path, exchange)
        if write_config is None and not model_path.exists():
            raise FileNotFoundError(f"no checkpoint at {model_path}")
    key_file = key_file or state_dir / "keys.json"
    chat = {}
    if chat_model_path is not None:
        chat["chat_model_path"] = str(chat_model_path.resolve())
        chat["chat_base_model"] = str(chat_base_model.resolve()) if chat_base_model else None
        chat["data_path"] = str(data_path.resolve()) if data_path else None
        if venue is not None:
            chat["exchange"] = venue
    service = {
        "state_dir": str(state_dir.resolve()), "key_file": str(key_file.resolve()),
        "signals_per_minute": signals_per_minute, "backtests_running_per_key": backtests_per_key,
        **{name: str(path.resolve()) for name, path in
           (("data_root", data_root), ("model_root", model_root), ("live_dir", live_dir))
           if path is not None},
    }
    if write_config is not None:
        config = serve_config(str(model_path), host, port, replicas, {**chat, **service})
        write_config.write_text(yaml.safe_dump(config, sort_keys=False))
        console.print(f"Serve config: {write_config}")
        return
    try:
        digests = legacy_digests()
        keys = KeyFile(key_file).ring(digests, legacy_scopes())
    except KeyFileError as err:
        console.print(f"[red]error:[/] {err}", soft_wrap=True)
        raise typer.Exit(2) from err
    if not keys:
        where = "" if is_loopback(host) else f" (and refuses to bind {host} without them)"
        console.print(f"[red]error:[/] no API keys: make one with `quantum keys add --state-dir "
                      f"{state_dir}` or set QUANTUM_API_KEYS; the service needs keys{where}",
                      soft_wrap=True)
        raise typer.Exit(2)
    ingress = None
    if direct_ingress:
        from serving.ingress import DirectIngress

        try:
            low, high = (int(p) for p in direct_ports.split("-"))
            ingress = DirectIngress(low, high)
        except ValueError as err:
            console.print(f"[red]error:[/] --direct-ports wants MIN-MAX: {err}", soft_wrap=True)
            raise typer.Exit(2) from err
        ingress.enable()
    from ray import serve

    from cluster.runtime import init_ray
    from serving.app import build_app

    init_ray()
    serve.start(http_options={"host": host, "port": port})
    app = build_app({"model_path": str(model_path), "replicas": replicas, "key_digests": digests,
                     **chat, **service})
    serve.run(app, name="quantum", route_prefix="/")
    console.print(f"serving {model_path} on http://{host}:{port} (OpenAPI: /openapi.json)")
    if ingress is not None:
        from serving.ingress import direct_urls

        urls = direct_urls(host, ingress)
        console.print(f"direct ingress: {' '.join(urls) or 'no replica port found'}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    console.print("shutting down")
    serve.shutdown()


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def signal_command(
    data_path: Annotated[Path, typer.Option(help="Market store to take the latest bars from.")],
    url: Annotated[str, typer.Option(help="The service's URL.")] = "http://127.0.0.1:8000",
    wait: Annotated[float, typer.Option(help="Seconds to wait for the service to be ready.")] = 0,
    exchange: Annotated[
        str | None, typer.Option(help="Exchange in the store (default: the only one it holds).")
    ] = None,
) -> None:
    """Ask a running service for a signal on the latest stored bars and print it."""
    import json
    import os

    import httpx

    from market.loader import choose_symbols, symbols_of_assets
    from market.store import ParquetStore
    from rl.cli_input import user_errors
    from serving.bars import recent_bars
    from serving.client import ApiError, QuantumClient

    with user_errors():
        venue = store_exchange(data_path, exchange)
    key = os.environ.get("QUANTUM_API_KEY") or os.environ.get("QUANTUM_API_KEYS", "").split(",")[0]
    client = QuantumClient(url, key.strip())
    try:
        if wait:
            client.wait_ready(wait)
        (model,) = client.models()
        with user_errors():  # the model's assets must be in the store
            store = ParquetStore(data_path)
            stored = store.symbols(venue, "1m")
            symbols = choose_symbols(store, venue, symbols_of_assets(model["assets"], stored))
            bars = recent_bars(data_path, symbols, model["min_bars"], venue)
        answer = client.signal(bars=bars)
    except (ApiError, httpx.HTTPError, TimeoutError) as err:
        console.print(f"[red]error:[/] the service at {url}: {err}", soft_wrap=True)
        raise typer.Exit(1) from err
    console.print_json(json.dumps(answer))


keys_app = typer.Typer(help="Scoped API keys of the service (a key file of salted digests).")
StateDir = Annotated[Path, typer.Option(
    help="The service's state folder (as `quantum serve --state-dir`).")]
KeyFileOption = Annotated[Path | None, typer.Option(
    help="Key file (default: STATE_DIR/keys.json).")]


def _key_file(state_dir: Path, key_file: Path | None):
    from serving.auth import KeyFile

    return KeyFile(key_file or state_dir / "keys.json")


def _audit_cli(state_dir: Path, action: str, params: dict, outcome: str, key_id: str | None
               ) -> None:
    """Key changes made on the server's shell are audited beside the HTTP ones."""
    import getpass
    from datetime import UTC, datetime

    from serving.guard import AuditLog

    AuditLog(state_dir / "audit.jsonl").write({
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"), "key_id": None,
        "route": f"cli keys {action}", "actor": getpass.getuser(), "params": params,
        "status": None, "outcome": outcome, "id": key_id,
    })


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: read, backtest, trade, admin.")],
    state_dir: StateDir = Path("serve-state"),
    key_file: KeyFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """Make a key. Its secret is printed once: it is stored nowhere."""
    import json

    from rl.cli_input import user_errors

    with user_errors():
        record, secret = _key_file(state_dir, key_file).add(name, scopes)
    _audit_cli(state_dir, "add", {"name": name, "scopes": list(record.scopes)}, "ok", record.id)
    if as_json:
        typer.echo(json.dumps({**record.public(), "secret": secret}))
        return
    console.print(f"key {record.id} ({', '.join(record.scopes)}) for {name}:")
    typer.echo(secret)
    console.print("[yellow]shown once: store it now (a secrets manager, not a repository)[/]")


@keys_app.command("list")
def keys_list(
    state_dir: StateDir = Path("serve-state"),
    key_file: KeyFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """The keys: id, name, scopes, when made and revoked (never a secret)."""
    import json

    from rich.table import Table

    from rl.cli_input import user_errors

    with user_errors():
        records = [r.public() for r in _key_file(state_dir, key_file).records().values()]
    if as_json:
        typer.echo(json.dumps(records))
        return
    table = Table("id", "name", "scopes", "created", "revoked")
    for r in records:
        table.add_row(r["id"], r["name"], ",".join(r["scopes"]), r["created"], r["revoked"] or "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `quantum keys list`).")],
    state_dir: StateDir = Path("serve-state"),
    key_file: KeyFileOption = None,
) -> None:
    """Revoke a key: a running service refuses it from its next request on."""
    from rl.cli_input import user_errors

    with user_errors():
        record = _key_file(state_dir, key_file).revoke(key_id)
    _audit_cli(state_dir, "revoke", {"key_id": key_id}, "ok", record.id)
    console.print(f"revoked {record.id} ({record.name})")
