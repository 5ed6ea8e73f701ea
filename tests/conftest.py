"""Suite-wide test settings.

Hypothesis runs derandomized by default, so the suite (and CI) is a pure function of the
code: a property failure found once fails every time until it is fixed. Set
``QUANTUM_HYPOTHESIS_PROFILE=explore`` to search with fresh random seeds and more examples;
add anything it finds as an ``@example`` so the deterministic run keeps it.

Most of the suite shares one process, so a test that leaves torch's process-wide state
changed (autograd switched off, the thread count) fails itself, by name, instead of every
later training test failing for no visible reason (CI once did: 42 tests, one cause).
"""

import os
import sys

import pytest
from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=500, print_blob=True)
settings.load_profile(os.environ.get("QUANTUM_HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture(autouse=True)
def _torch_state_is_left_as_found():
    torch = sys.modules.get("torch")
    before = (torch.is_grad_enabled(), torch.get_num_threads()) if torch else None
    yield
    torch = sys.modules.get("torch")
    if torch is None:
        return
    after = (torch.is_grad_enabled(), torch.get_num_threads())
    if before is None:
        before = (True, after[1])  # imported during the test: only grad mode is known
    assert after == before, (
        f"the test left torch's process-wide (grad enabled, threads) at {after}, was {before}")
