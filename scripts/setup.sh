#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs the project with its pinned dependencies.
# torch goes first as its own step: the CPU build of 2.13.0 is what every other
# package is resolved against, and an unpinned torch would pull gigabytes of CUDA.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.quantum-installed
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
log=.venv/setup.log
echo "installing dependencies into .venv (log: $log) ..."
{
    .venv/bin/python -m pip install --upgrade pip
    .venv/bin/python -m pip install "torch==2.13.0"
    .venv/bin/python -m pip install -c constraints.txt -e ".[dev]"
} > "$log" 2>&1 || { tail -n 40 "$log"; echo "set-up failed; full log in $log" >&2; exit 1; }
echo "$want" > "$stamp"
