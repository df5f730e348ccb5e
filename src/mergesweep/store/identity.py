"""What makes two sweep points "the same point": exact strength, config, and checkpoint *contents*.

The point id names a record and decides resume. Two rules keep resume honest:

* the strength goes in exactly (``repr`` round-trips a float): ``lam=0.5000004`` is not ``lam=0.5``;
* checkpoints go in by content (sha256 of their weight/config/tokenizer files), not by path: a checkpoint
  overwritten in place gives a new id (the point reruns), and the same folder spelled differently
  (``a/../a``, a symlink) gives the same id.

Hashing a multi-GB checkpoint takes a while, so file hashes come through ``checkpoints.file_sha256``'s cache,
keyed by resolved path, size and mtime (a file rewritten in place changes its mtime and is hashed again).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Model config keys that name checkpoints: replaced by content digests in the id.
CHECKPOINT_KEYS = ("base", "instruct", "target", "adapter", "finetuned")
ID_CONFIG_KEYS = ("model", "merge", "suite", "engine", "storage", "seed", "bootstrap")


def lam_text(lam: float) -> str:
    """Shortest text that round-trips the float (``0.5``, ``0.5000004``, ``1e+30``); ``1.0`` reads ``1``."""
    s = repr(float(lam))
    return s[:-2] if s.endswith(".0") else s


def point_id(family: str, method: str, lam: float, config_subset: dict[str, Any]) -> str:
    """Readable and unique: ``<family>__<method>__lam<exact lam>__<hash of everything else that changes results>``."""
    payload = json.dumps({"lam": repr(float(lam)), "config": config_subset}, sort_keys=True, default=str)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:10]
    return f"{family}__{method}__lam{lam_text(lam)}__{digest}"


def id_subset(container: dict[str, Any], checkpoint_hashes: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The config parts that change results, with checkpoint paths replaced by their contents' digests."""
    subset = {k: container.get(k) for k in ID_CONFIG_KEYS}
    subset["model"] = {k: v for k, v in (subset.get("model") or {}).items() if k not in CHECKPOINT_KEYS}
    subset["checkpoints"] = {role: content_digest(h) for role, h in sorted(checkpoint_hashes.items())}
    return subset


def content_digest(file_hashes: dict[str, str]) -> str:
    """One sha256 over a checkpoint's ``{file: sha256}`` (names included: a renamed shard is a change)."""
    return hashlib.sha256(json.dumps(sorted(file_hashes.items())).encode()).hexdigest()
