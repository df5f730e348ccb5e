#!/usr/bin/env bash
# Lint (ruff), formatting (ruff format) and types (mypy over src/mergesweep), as CI runs them; all must be clean.
# Usage: bash scripts/lint.sh        (fix formatting with: .venv/bin/ruff format . && .venv/bin/ruff check --fix .)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
