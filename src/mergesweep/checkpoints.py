"""Find and lazily read checkpoints: safetensors (sharded or not), configs, hashes, compatibility checks.

Why lazy: a 70B pair must not need 3x its size in RAM, so tensors are read one at a time through
``safe_open`` and only the merge plan decides what stays resident. Pickled ``.bin`` weights can execute code
when loaded, so they are refused unless the caller opts in (``allow_pickle=True``).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, unsafe to load, or incompatible with its partner."""


def resolve(path_or_id: str, revision: str | None = None) -> Path:
    """A local directory as is; otherwise a hub id fetched to the HF cache (fails clearly when offline)."""
    p = Path(os.path.expanduser(str(path_or_id)))
    if p.is_dir():
        return p.resolve()
    if p.is_absolute() or str(path_or_id).startswith((".", "~")) or os.sep + os.sep in str(path_or_id):
        raise CheckpointError(f"checkpoint directory not found: {p}")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(path_or_id), revision=revision,
                                      allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt"]))
    except Exception as e:  # offline, unknown repo, gated model...
        raise CheckpointError(f"checkpoint {path_or_id!r} is not a local directory and could not be fetched "
                              f"from the hub ({type(e).__name__}: {e})") from None


@dataclass
class Checkpoint:
    """A model directory: its config and a name -> (file, shape, dtype) index, tensors read on demand."""

    path: Path
    allow_pickle: bool = False
    config: dict = field(init=False)
    index: dict[str, Path] = field(init=False)
    shapes: dict[str, tuple[int, ...]] = field(init=False)
    dtypes: dict[str, str] = field(init=False)
    dropped: list[str] = field(init=False, default_factory=list)  # tied head copies ignored
    _pickled: dict[str, torch.Tensor] | None = field(init=False, default=None)
    _spans: dict[str, tuple[int, int]] = field(init=False, default_factory=dict)  # absolute byte ranges

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        cfg = self.path / "config.json"
        if not cfg.is_file():
            raise CheckpointError(f"{self.path}: no config.json (is this a Hugging Face model directory?)")
        try:
            self.config = json.loads(cfg.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{cfg}: corrupt JSON ({e})") from None
        self.index, self.shapes, self.dtypes = {}, {}, {}
        files = self._weight_files()
        for f in files:
            self._scan(f)
        if not self.index:
            raise CheckpointError(f"{self.path}: weight files hold no tensors ({[f.name for f in files]})")
        self._drop_tied_head()

    def _drop_tied_head(self) -> None:
        """A tied model's head *is* its embedding: some exporters still save ``lm_head.weight``; drop it.

        Then tied checkpoints compare equal whether or not the copy was saved, the embedding is merged once,
        and exports stay tied (loaders re-tie the head).
        """
        c = self.config.get("text_config", self.config)
        if c.get("tie_word_embeddings", self.config.get("tie_word_embeddings")) is not True:
            return  # only an explicit tie: a missing key must never cost an untied model its head
        heads = [n for n in self.index if n.endswith("lm_head.weight")]
        if heads and any("embed_tokens" in n or n.endswith("wte.weight") for n in self.index):
            for n in heads:
                del self.index[n], self.shapes[n], self.dtypes[n]
            self.dropped = heads

    def _weight_files(self) -> list[Path]:
        idx = self.path / "model.safetensors.index.json"
        if idx.is_file():
            return self._indexed(idx)
        files = sorted(self.path.glob("*.safetensors"))
        if files:
            return files
        bin_idx = self.path / "pytorch_model.bin.index.json"
        bins = sorted(self.path.glob("pytorch_model*.bin")) or sorted(self.path.glob("model*.bin"))
        if (bins or bin_idx.is_file()) and not self.allow_pickle:
            raise CheckpointError(f"{self.path} holds only pickled .bin weights, which can run code when loaded; "
                                  "convert to safetensors or opt in with model.allow_pickle=true")
        if bin_idx.is_file():
            return self._indexed(bin_idx)
        if bins:
            return bins
        raise CheckpointError(f"{self.path}: no *.safetensors weights found")

    def _indexed(self, idx: Path) -> list[Path]:
        """Shard files named by a ``*.index.json`` (every one must exist)."""
        try:
            weight_map = json.loads(idx.read_text())["weight_map"]
            names = sorted(set(weight_map.values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{idx}: corrupt shard index ({type(e).__name__}: {e})") from None
        files = [self.path / n for n in names]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{idx}: shard index names missing files: {missing[:3]}")
        return files

    def _scan(self, f: Path) -> None:
        if f.suffix == ".bin":
            try:  # weights_only: tensors and plain containers only, no arbitrary objects
                state = torch.load(f, map_location="cpu", weights_only=True)
            except Exception as e:
                raise CheckpointError(f"{f}: not a loadable weights-only torch file "
                                      f"({type(e).__name__}: {e})") from None
            self._pickled = {**(self._pickled or {}), **state}
            for k, v in state.items():
                self.index[k], self.shapes[k], self.dtypes[k] = f, tuple(v.shape), str(v.dtype).replace("torch.", "")
            return
        try:
            with safe_open(str(f), framework="pt") as h:  # validates the header against the file size
                for k in h.keys():
                    sl = h.get_slice(k)
                    self.index[k], self.shapes[k] = f, tuple(sl.get_shape())
                    self.dtypes[k] = _ST_DTYPES.get(sl.get_dtype(), sl.get_dtype())
            data_start, header = _st_header(f)
            for k, v in header.items():
                if k != "__metadata__":
                    self._spans[k] = (data_start + int(v["data_offsets"][0]), data_start + int(v["data_offsets"][1]))
        except Exception as e:
            raise CheckpointError(f"{f}: not a readable safetensors file ({type(e).__name__}: {e})") from None

    @property
    def names(self) -> list[str]:
        return list(self.index)

    @property
    def architecture(self) -> str:
        return ",".join(self.config.get("architectures") or [self.config.get("model_type", "?")])

    @property
    def num_layers(self) -> int:
        c = self.config.get("text_config", self.config)
        return int(c.get("num_hidden_layers") or c.get("n_layer") or 0)

    @property
    def tied(self) -> bool:
        c = self.config.get("text_config", self.config)
        return bool(c.get("tie_word_embeddings", self.config.get("tie_word_embeddings", True)))

    def get(self, name: str, device: str | torch.device = "cpu") -> torch.Tensor:
        """One tensor, read from its file (memory-mapped) and moved to ``device``."""
        if self._pickled is not None:
            return self._pickled[name].to(device)
        f = self.index[name]
        try:  # one open per read: no mapping outlives the call, so reads never pile up in RSS
            with safe_open(str(f), framework="pt", device="cpu") as h:
                t = h.get_tensor(name)
        except Exception as e:  # file replaced or truncated since the scan
            raise CheckpointError(f"{f}: could not read tensor {name} ({type(e).__name__}: {e})") from None
        return t.to(device)

    def read_rows(self, name: str, start: int | None = None, stop: int | None = None) -> torch.Tensor:
        """Rows ``start:stop`` of a tensor (all of it by default) on the CPU, read with plain file I/O.

        Why not ``safe_open``: a memory map keeps every page it touched in the process's RSS until it is
        closed, so streaming a large tensor block by block through one would still cost the whole tensor.
        ``pread`` into a fresh buffer costs only the block (the page cache holds the file, outside the
        process). Float and integer dtypes of safetensors files; pickled checkpoints are sliced in memory.
        """
        shape = self.shapes[name]
        if self._pickled is not None or name not in self._spans or self.dtypes[name] not in TORCH_DTYPES:
            t = self._pickled[name] if self._pickled is not None else self.get(name)
            return t if start is None and stop is None else t[start:stop]
        dtype = TORCH_DTYPES[self.dtypes[name]]
        begin, end = self._spans[name]
        rows = shape[0] if shape else 1
        start, stop, _ = slice(start, stop).indices(rows)
        stop = max(start, stop)
        row_bytes = (end - begin) // max(rows, 1)
        buf = torch.empty((stop - start) * row_bytes, dtype=torch.uint8)
        f = self.index[name]
        try:
            with open(f, "rb", buffering=0) as fh:
                fh.seek(begin + start * row_bytes)
                view, got = memoryview(buf.numpy()), 0
                while got < len(view):
                    n = fh.readinto(view[got:])
                    if not n:
                        raise EOFError(f"file ends {len(view) - got} bytes early")
                    got += n
        except (OSError, EOFError) as e:
            raise CheckpointError(f"{f}: could not read tensor {name} ({type(e).__name__}: {e})") from None
        return buf.view(dtype).reshape((stop - start, *shape[1:]) if shape else ())

    def iter_tensors(self, device: str | torch.device = "cpu") -> Iterator[tuple[str, torch.Tensor]]:
        """All tensors, one file handle per shard (cheaper than ``get`` per name)."""
        by_file: dict[Path, list[str]] = {}
        for n, f in self.index.items():
            by_file.setdefault(f, []).append(n)
        for f, names in by_file.items():
            if self._pickled is not None:
                yield from ((n, self._pickled[n].to(device)) for n in names)
                continue
            with safe_open(str(f), framework="pt", device="cpu") as h:
                for n in names:
                    yield n, h.get_tensor(n).to(device)

    def weight_files(self) -> list[Path]:
        return sorted(set(self.index.values()))


TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                 "float64": torch.float64, "int64": torch.int64, "int32": torch.int32, "uint8": torch.uint8,
                 "int8": torch.int8, "bool": torch.bool}


def _st_header(f: Path) -> tuple[int, dict]:
    """(byte offset where tensor data starts, header JSON) of a safetensors file."""
    with open(f, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if not 0 < n <= min(100 << 20, f.stat().st_size - 8):
            raise ValueError(f"header length {n} does not fit the file")
        return 8 + n, json.loads(fh.read(n))


class MemoryCheckpoint(Checkpoint):
    """A state dict posing as a checkpoint (benchmarks, tests): the same interface, no files.

    Tensors may live on any device; ``get`` moves them where asked.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], config: dict | None = None, name: str = "<memory>"):
        self.path, self.allow_pickle = Path(name), True
        self.config = dict(config or {"architectures": ["InMemory"]})
        self._pickled, self._spans, self.dropped = dict(tensors), {}, []
        self.index = {k: self.path for k in tensors}
        self.shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        self.dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in tensors.items()}

    def weight_files(self) -> list[Path]:
        return []


_ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
              "BOOL": "bool", "U8": "uint8", "I8": "int8", "F64": "float64"}


def check_compatible(a: Checkpoint, b: Checkpoint, label_a: str = "base", label_b: str = "instruct") -> None:
    """Fail before any heavy work if two checkpoints cannot be merged tensor by tensor.

    Rows of the embedding/head may differ (an instruct model that added chat tokens); every other tensor
    must match by name and shape. The error names the first mismatches so the user can see what is wrong.
    """
    if a.architecture != b.architecture:
        raise CheckpointError(f"architectures differ: {label_a} is {a.architecture} ({a.path}), "
                              f"{label_b} is {b.architecture} ({b.path})")
    only_a = sorted(set(a.names) - set(b.names))
    only_b = sorted(set(b.names) - set(a.names))
    if only_a or only_b:
        raise CheckpointError(f"tensor names differ: only in {label_a}: {only_a[:5]}; only in {label_b}: {only_b[:5]}")
    bad = [f"{n}: {a.shapes[n]} vs {b.shapes[n]}" for n in a.names
           if a.shapes[n] != b.shapes[n] and not _vocab_rows_only(n, a.shapes[n], b.shapes[n])]
    if bad:
        raise CheckpointError(f"tensor shapes differ between {label_a} and {label_b} (first {min(5, len(bad))} "
                              f"of {len(bad)}): " + "; ".join(bad[:5]))


def _vocab_rows_only(name: str, sa: tuple[int, ...], sb: tuple[int, ...]) -> bool:
    low = name.lower()
    vocab_like = "embed" in low or "lm_head" in low or low.endswith("wte.weight")
    return vocab_like and len(sa) == len(sb) and sa[1:] == sb[1:]


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of a weight file, cached by (path, size, mtime) so a 70B sweep hashes each shard once."""
    st = path.stat()
    cache_dir = cache_dir or Path(os.environ.get("MERGESWEEP_CACHE", Path.home() / ".cache" / "mergesweep"))
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
    """``{file name: sha256}`` for the files in ``path`` matching ``patterns`` (weights, configs, tokenizer)."""
    path = Path(path)
    return {f.name: file_sha256(f) for pat in patterns for f in sorted(path.glob(pat)) if f.is_file()}


def checkpoint_hashes(ckpt: Checkpoint) -> dict[str, str]:
    """``{relative file name: sha256}`` for the weights and config: what a reviewer needs to match a record."""
    files = ckpt.weight_files() + [ckpt.path / "config.json"]
    return {f.name: file_sha256(f) for f in files}


def save_interleaved_shards(state: dict[str, torch.Tensor], path: Path, shards: int) -> Path:
    """Write ``state`` as ``shards`` safetensors files (names dealt round-robin) plus the standard index.

    For tests and benchmarks: interleaving puts neighbouring tensors in different files, which exercises the
    out-of-order reads a real sharded checkpoint can need.
    """
    from safetensors.torch import save_file

    names, weight_map = sorted(state), {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: state[n] for n in names[s::shards]}
        save_file(part, str(Path(path) / fname))
        weight_map.update({n: fname for n in part})
    (Path(path) / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return Path(path)
