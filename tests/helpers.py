"""Test-side writers shared by tests and the merge benchmark (``scripts/bench_merge.py``): not part of the package."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def save_interleaved_shards(state: dict[str, torch.Tensor], path: Path, shards: int) -> Path:
    """Write ``state`` as ``shards`` safetensors files (names dealt round-robin) plus the standard index.

    Interleaving puts neighbouring tensors in different files, which exercises the out-of-order reads a real
    sharded checkpoint can need.
    """
    from safetensors.torch import save_file

    names, weight_map = sorted(state), {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: state[n] for n in names[s::shards]}
        save_file(part, str(Path(path) / fname))
        weight_map.update(dict.fromkeys(part, fname))
    (Path(path) / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return Path(path)
