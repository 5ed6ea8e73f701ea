"""Point numba's on-disk cache at a directory keyed by the kernels' source code.

numba's `cache=True` checks only the timestamp of the file that defines a
function, so editing a kernel that another kernel calls (in another module)
would silently keep running the stale compiled caller. Keying the cache
directory by a hash of every kernel source (market/, envs/, the backtest
drivers and rl/gae.py) and numba's
version makes any edit start from a fresh cache, while unchanged code still
loads compiled kernels from disk (Ray workers skip the ~10 s compile).
Set NUMBA_CACHE_DIR to override.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numba

_ROOT = Path(__file__).resolve().parent.parent
_KERNEL_SOURCES = (
    "market", "envs", "backtest/engine.py", "backtest/fast.py", "backtest/fast_kernels.py",
    "rl/gae.py",
)
"""Folders (every .py inside) and files whose numba kernels share the cache."""


@functools.cache
def _source_digest() -> str:
    digest = hashlib.sha256(numba.__version__.encode())
    for source in _KERNEL_SOURCES:
        base = _ROOT / source
        for path in sorted(base.rglob("*.py")) if base.is_dir() else [base]:
            digest.update(path.relative_to(_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def configure_numba_cache() -> None:
    """Set numba's cache directory (unless NUMBA_CACHE_DIR is set); call before any kernel."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "quantum" / "numba"
    numba.config.CACHE_DIR = str(base / _source_digest())
