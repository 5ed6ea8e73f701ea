"""Writing result files so that a crash never leaves a half-written one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write through a temporary file in the same folder, then rename it onto ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from the rest of a team
        with os.fdopen(fd, "wb") as f:
            write(f)
        Path(tmp).replace(path)  # os.replace: atomic on one filesystem
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
