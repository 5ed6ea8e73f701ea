#!/usr/bin/env bash
# The main job on the embedded defaults: set up, generate the synthetic perpetual-futures
# market (BTC, ETH, SOL; 1-minute bars), summarise it, then train the hierarchical PPO
# policy on it for a short run (local Ray, W&B offline) and print the training summary,
# on the first 70% of the data (validation on the next 15% selects the best checkpoint),
# then backtest the trained policy on the untouched last 15% (the run's test part, out of
# sample by construction) against the rule baselines and write the report
# (results/quickstart/report.html), and finally serve the policy over
# HTTP (Ray Serve on 127.0.0.1:8000), ask it for one signal on the latest bars, print it
# and shut the service down.
# Arguments go to `quantum data synth`; QUICKSTART_STEPS sets the training budget.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export WANDB_MODE="${WANDB_MODE:-offline}"
.venv/bin/quantum data synth --out data/ "$@"
.venv/bin/quantum data summary --data data/ --exchange synthetic
run="runs/quickstart-$(date -u +%Y%m%d-%H%M%S)"
.venv/bin/quantum train --config defaults --data data/ --steps "${QUICKSTART_STEPS:-16384}" \
  --out "$run"
.venv/bin/quantum backtest --model-path "$run" --data-path data/ --output-dir results/quickstart
export QUANTUM_API_KEYS="${QUANTUM_API_KEYS:-quickstart-$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')}"
port="${QUICKSTART_PORT:-8000}"
.venv/bin/quantum serve --model-path "$run" --port "$port" &
server=$!
trap 'kill -INT "$server" 2>/dev/null || true' EXIT
.venv/bin/quantum signal --data-path data/ --url "http://127.0.0.1:$port" --wait 300
kill -INT "$server"
wait "$server"
trap - EXIT
