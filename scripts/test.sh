#!/usr/bin/env bash
# Set up, lint, then run the whole test suite (unit, integration, e2e; slow ones too).
# Extra arguments go to pytest, e.g. scripts/test.sh -k collector -x; the fast lane
# (everything not marked slow) is scripts/test.sh -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export WANDB_MODE=offline
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
