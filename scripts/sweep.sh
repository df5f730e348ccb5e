#!/usr/bin/env bash
# Set up .venv if needed, then run the default sweep: toy pair, 5 strengths, vLLM engine -> results/default/.
# Extra arguments are Hydra overrides, e.g.: bash scripts/sweep.sh engine=hf sweep.name=hf_check
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mergesweep -m strength=0,0.25,0.5,0.75,1 "$@"
