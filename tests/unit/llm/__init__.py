"""Tests of the trading language model.

Nothing here may reach a model hub: every model is built from scratch in a tmp dir, and
HF_HUB_OFFLINE is set before transformers is first imported by these tests.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
