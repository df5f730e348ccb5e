#!/usr/bin/env bash
# Set up .venv if needed, then run the whole test suite (engine and sweep tests included; ~15 min after set-up on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
