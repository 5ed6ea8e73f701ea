"""The reproducibility manifest written next to every run's checkpoints.

It records what a rerun needs and what it must match: the full TrainConfig and its
hash, the sha256 of the market arrays the envs read (so a changed dataset is caught,
not silently trained on), the seeds, the code commit (and whether the tree had
uncommitted changes) and the versions of the packages that shape the numbers.
``quantum train --from-manifest runs/X/manifest.json`` reruns it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from envs.data import MarketArrays
from rl.config import TrainConfig
from rl.splits import record, resolve

PACKAGES = ("ray", "torch", "numpy", "numba", "gymnasium", "pandas", "pyarrow", "ccxt", "ta")
ROOT = Path(__file__).resolve().parents[1]


def data_digest(data: MarketArrays) -> str:
    """sha256 over the arrays the simulator reads (prices, costs, features, times)."""
    h = hashlib.sha256()
    h.update(json.dumps([list(data.assets), list(data.features), data.first_valid]).encode())
    for array in (data.timestamps, data.mkt, data.feats, data.days):
        h.update(array.tobytes())
    return h.hexdigest()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _window(config: TrainConfig) -> int:
    return config.env.window


def build_manifest(config: TrainConfig, data: MarketArrays) -> dict[str, Any]:
    status = _git("status", "--porcelain")
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "config": config.model_dump(mode="json"),
        # the exact bars each part of the data used (rl.splits): what backtests check
        "splits": record(resolve(data, config.split, _window(config)), data),
        "config_sha256": config.digest(),
        "data_sha256": data_digest(data),
        "data_assets": list(data.assets),
        "data_features": list(data.features),
        "seed": config.seed,
        "code_commit": _git("rev-parse", "HEAD"),
        "code_dirty": bool(status) if status is not None else None,
        "python": platform.python_version(),
        "packages": versions,
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(path)


def config_from_manifest(path: Path, data: MarketArrays | None = None) -> TrainConfig:
    """The manifest's TrainConfig; with ``data``, checks it is the same dataset."""
    manifest = json.loads(Path(path).read_text())
    config = TrainConfig.model_validate(manifest["config"])
    if config.digest() != manifest["config_sha256"]:
        raise ValueError(f"{path}: config does not match its recorded hash (edited by hand?)")
    if data is not None and data_digest(data) != manifest["data_sha256"]:
        raise ValueError(
            f"{path}: the market data differs from the run's (sha256 mismatch); "
            "a rerun on other data cannot reproduce it"
        )
    return config
