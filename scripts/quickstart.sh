#!/usr/bin/env bash
# The main job on the embedded defaults: set up, then generate the synthetic
# perpetual-futures market (BTC, ETH, SOL; 1-minute bars) and summarise it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export WANDB_MODE="${WANDB_MODE:-offline}"
.venv/bin/quantum data synth --out data/ "$@"
.venv/bin/quantum data summary --data data/ --exchange synthetic
