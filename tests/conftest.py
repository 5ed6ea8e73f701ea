"""Suite-wide test settings.

Hypothesis runs derandomized by default, so the suite (and CI) is a pure function of the
code: a property failure found once fails every time until it is fixed. Set
``QUANTUM_HYPOTHESIS_PROFILE=explore`` to search with fresh random seeds and more examples;
add anything it finds as an ``@example`` so the deterministic run keeps it.
"""

import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=500, print_blob=True)
settings.load_profile(os.environ.get("QUANTUM_HYPOTHESIS_PROFILE", "deterministic"))
