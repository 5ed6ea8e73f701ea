"""torch.compile with a permanent eager fallback (the sampling forward, the loss step).

Compilation needs a C++ compiler and ops inductor can lower; where either is
missing, training must go on eager rather than fail, and say so once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)


class CompiledOrEager:
    """Calls ``torch.compile(fn)``; after its first failure, ``fn`` itself, for good.

    A genuine error in ``fn`` (not a compiler one) is raised again by the eager retry.
    """

    def __init__(self, fn: Callable, what: str) -> None:
        self.eager = fn
        self.what = what
        self.failed = False
        self._compiled = torch.compile(fn)

    def __call__(self, *args: Any) -> Any:
        if not self.failed:
            try:
                return self._compiled(*args)
            except Exception as err:  # any compiler failure: go eager
                log.warning("torch.compile of %s failed (%s): running eager", self.what, err)
                self.failed = True
        return self.eager(*args)
