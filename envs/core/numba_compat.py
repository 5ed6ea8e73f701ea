"""The one place Quantum uses numba's private API (numba as pinned, see constraints.txt).

`step_batch`'s loop is compiled without numba's runtime reference counting (NRT): with
it, every array argument of every inlined helper costs an atomic incref/decref pair that
numba cannot prune, some 30% of the kernel's time (envs/core/step.py says when that is
safe). numba switches NRT off per function only through the private jit option
``_nrt``; its public switch, ``NUMBA_DISABLE_NRT`` / ``numba.config``, is process-wide.

``PRIVATE_SURFACE`` lists what is used, as data: (owner "module:Class", name,
parameters or None for an attribute); tests/unit/test_private_surface.py checks it
against the installed numba and compiles a kernel through ``njit_without_refcount``.
"""

from __future__ import annotations

from typing import Any

from numba import njit

PRIVATE_SURFACE: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("numba.core.cpu:CPUTargetOptions", "_nrt", None),
)
"""Every private numba name used here. Checked by tests/unit/test_private_surface.py."""


def njit_without_refcount(**options: Any):
    """``numba.njit(**options)`` with reference counting off (``_nrt=False``).

    Only for kernels that allocate nothing and take only views of arrays their caller
    keeps alive: without NRT nothing is freed or kept alive for them.
    """
    return njit(_nrt=False, **options)
