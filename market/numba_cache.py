"""Point numba's on-disk cache at a directory keyed by the kernels' source code.

numba's `cache=True` checks only the timestamp of the file that defines a
function, so editing a kernel that another kernel calls (in another module)
would silently keep running the stale compiled caller. Keying the cache
directory by a hash of the kernel sources and numba's version makes any edit
start from a fresh cache, while unchanged code still loads compiled kernels
from disk (Ray workers skip the ~10 s compile). Set NUMBA_CACHE_DIR to override.

Each package declares its own kernel sources: ``configure_numba_cache(*sources)``
(files, or folders meaning every .py inside) before it defines its kernels. This
package (market/) is always declared; nothing here knows the higher layers. numba
fixes a kernel's cache directory when the kernel is defined, so the directory is
keyed by every source declared *so far*: declare after importing the modules whose
kernels yours call (their own declarations then come first), and a kernel's key
covers its callees. A process that declared other sources (another import order or
set) may key the same kernel differently: that costs a compile, never a stale kernel.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numba

_OWN = Path(__file__).resolve().parent
"""market/: its kernels (market._feature_kernels, market._feature_rolling) key every cache."""
_declared: dict[Path, None] = {_OWN: None}
"""Declared kernel sources (files or folders), in declaration order."""


def _name(path: Path) -> str:
    """A source's name in the digest: relative to the folder above this package (so
    checkouts in different places share a key), else absolute."""
    root = _OWN.parent
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


@functools.cache
def _source_digest(sources: frozenset[Path]) -> str:
    digest = hashlib.sha256(numba.__version__.encode())
    files = {f for base in sources for f in (base.rglob("*.py") if base.is_dir() else [base])}
    for path in sorted(files, key=_name):
        digest.update(_name(path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def declared_sources() -> tuple[Path, ...]:
    """The kernel sources declared so far (this package first)."""
    return tuple(_declared)


def configure_numba_cache(*sources: str | os.PathLike[str]) -> None:
    """Declare `sources` (the caller's kernel files or folders; none: only re-apply) and
    set numba's cache directory to the one keyed by every source declared so far (unless
    NUMBA_CACHE_DIR is set). Call it before defining any kernel."""
    for source in sources:
        path = Path(source).resolve()
        if not path.exists():
            raise FileNotFoundError(f"numba kernel source {path} does not exist")
        _declared.setdefault(path, None)
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "quantum" / "numba"
    numba.config.CACHE_DIR = str(base / _source_digest(frozenset(_declared)))
