"""Where a checkpoint's tensors live: safetensors files read lazily, or a state dict already in memory.

``checkpoints.Checkpoint`` holds one ``TensorStore`` and asks it for shapes, dtypes and reads; it never asks
which kind it holds. Two backends:

* ``SafetensorsStore``: each file's header is parsed once (and checked against the file size) when the
  checkpoint opens; tensors are read on demand. Why lazy: a 70B pair must not need 3x its size in RAM, so
  only the merge plan decides what stays resident.
* ``MemoryStore``: tensors already in memory, either a state dict handed over (benchmarks, tests) or pickled
  ``.bin`` files loaded with ``torch.load(weights_only=True)`` (they cannot be read lazily).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open

from ..errors import CheckpointError

TORCH_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint8": torch.uint8,
    "int8": torch.int8,
    "bool": torch.bool,
}
# safetensors dtype tag -> (our dtype name, bytes per element); unknown tags keep their tag and skip the size check
_ST_DTYPES = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1), "U8": ("uint8", 1),
    "U16": ("uint16", 2), "U32": ("uint32", 4), "U64": ("uint64", 8), "BOOL": ("bool", 1),
    "F8_E4M3": ("float8_e4m3fn", 1), "F8_E5M2": ("float8_e5m2", 1),
}  # fmt: skip
_MAX_HEADER = 100 << 20  # safetensors' own limit
# A read's byte count -> a buffer at least that long to read into (kept by the caller), or None for fresh memory.
Scratch = Callable[[int], "torch.Tensor | None"]


class TensorStore(ABC):
    """Names -> shape, dtype and source file, plus reads. Shapes and dtypes are known without reading data."""

    def __init__(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, str] = {}
        self.files: dict[str, Path] = {}  # the file each tensor is read from (none for a handed-over state dict)

    @abstractmethod
    def get(self, name: str) -> torch.Tensor:
        """The whole tensor (a file-backed store reads it to the CPU; a memory store returns it where it is)."""

    @abstractmethod
    def read_rows(
        self, name: str, start: int | None = None, stop: int | None = None, scratch: Scratch | None = None
    ) -> torch.Tensor:
        """Rows ``start:stop`` of a tensor (all of it by default), in memory of their own for file stores, or in
        the byte buffer ``scratch(nbytes)`` hands back (one the caller recycles; None: fresh memory)."""

    def drop(self, names: list[str]) -> None:
        """Forget ``names`` (a tied head copy): they are then absent from every view of the checkpoint."""
        for n in names:
            del self.shapes[n], self.dtypes[n]
            self.files.pop(n, None)


class MemoryStore(TensorStore):
    """Tensors already in memory, on any device; reads return them (or row slices) without copying."""

    def __init__(self, tensors: dict[str, torch.Tensor], files: dict[str, Path] | None = None) -> None:
        super().__init__()
        self.tensors = dict(tensors)
        self.shapes = {k: tuple(v.shape) for k, v in self.tensors.items()}
        self.dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in self.tensors.items()}
        self.files = dict(files or {})

    @classmethod
    def from_pickles(cls, files: list[Path]) -> MemoryStore:
        """Pickled ``.bin`` shards, loaded whole with ``weights_only`` (tensors and plain containers only)."""
        tensors: dict[str, torch.Tensor] = {}
        where: dict[str, Path] = {}
        for f in files:
            try:
                state = torch.load(f, map_location="cpu", weights_only=True)
            except Exception as e:
                raise CheckpointError(
                    f"{f}: not a loadable weights-only torch file ({type(e).__name__}: {e})"
                ) from None
            tensors.update(state)
            where.update(dict.fromkeys(state, f))
        return cls(tensors, where)

    def get(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def read_rows(
        self, name: str, start: int | None = None, stop: int | None = None, scratch: Scratch | None = None
    ) -> torch.Tensor:
        t = self.tensors[name]
        return t if start is None and stop is None else t[start:stop]

    def drop(self, names: list[str]) -> None:
        super().drop(names)
        for n in names:
            del self.tensors[n]


class SafetensorsStore(TensorStore):
    """Safetensors files: headers parsed once here, tensor data read per call with plain file I/O."""

    def __init__(self, files: list[Path]) -> None:
        super().__init__()
        self.spans: dict[str, tuple[int, int]] = {}  # absolute byte range of each tensor's data
        for f in files:
            try:
                self._scan(f)
            except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
                raise CheckpointError(f"{f}: not a readable safetensors file ({type(e).__name__}: {e})") from None

    def _scan(self, f: Path) -> None:
        """Shapes, dtypes and byte ranges from the header, checked against the file so truncation fails now."""
        data_start, header = read_header(f)
        data_len = f.stat().st_size - data_start
        end_max = 0
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            tag, shape = str(entry["dtype"]), tuple(int(d) for d in entry["shape"])
            begin, end = (int(x) for x in entry["data_offsets"])
            dtype, size = _ST_DTYPES.get(tag, (tag, None))
            if not 0 <= begin <= end <= data_len:
                raise ValueError(f"tensor {name} spans bytes {begin}..{end} of a {data_len}-byte data section")
            if size is not None and end - begin != math.prod(shape) * size:
                raise ValueError(f"tensor {name}: {end - begin} bytes for shape {shape} of {tag}")
            self.shapes[name], self.dtypes[name], self.files[name] = shape, dtype, f
            self.spans[name] = (data_start + begin, data_start + end)
            end_max = max(end_max, end)
        if end_max != data_len:
            raise ValueError(f"data section is {data_len} bytes but the tensors end at byte {end_max}")

    def get(self, name: str) -> torch.Tensor:
        if self.dtypes[name] in TORCH_DTYPES:
            return self.read_rows(name)
        f = self.files[name]
        try:  # dtypes plain reads do not cover (fp8, ...): safetensors decodes them
            with safe_open(str(f), framework="pt", device="cpu") as h:
                return h.get_tensor(name)
        except Exception as e:  # file replaced or truncated since the scan
            raise CheckpointError(f"{f}: could not read tensor {name} ({type(e).__name__}: {e})") from None

    def read_rows(
        self, name: str, start: int | None = None, stop: int | None = None, scratch: Scratch | None = None
    ) -> torch.Tensor:
        """Why not ``safe_open``: a memory map keeps every page it touched in the process's RSS until it is
        closed, so streaming a large tensor block by block through one would still cost the whole tensor.
        ``pread`` into a buffer costs only the block (the page cache holds the file, outside the process).
        Why ``scratch``: a fresh buffer per block let glibc's heaps grow by GBs over a streamed point (2.6 GB on
        the 0.5B bench when the files came from disk); a recycled one allocates nothing.
        """
        if self.dtypes[name] not in TORCH_DTYPES:
            t = self.get(name)
            return t if start is None and stop is None else t[start:stop]
        shape = self.shapes[name]
        begin, end = self.spans[name]
        rows = shape[0] if shape else 1
        start, stop, _ = slice(start, stop).indices(rows)
        stop = max(start, stop)
        row_bytes = (end - begin) // max(rows, 1)
        n = (stop - start) * row_bytes
        kept = scratch(n) if scratch is not None else None
        buf = kept[:n] if kept is not None else torch.empty(n, dtype=torch.uint8)
        f = self.files[name]
        try:
            with open(f, "rb", buffering=0) as fh:
                fh.seek(begin + start * row_bytes)
                view, got = buf.numpy().data, 0
                while got < len(view):
                    n = fh.readinto(view[got:])
                    if not n:
                        raise EOFError(f"file ends {len(view) - got} bytes early")
                    got += n
        except (OSError, EOFError) as e:
            raise CheckpointError(f"{f}: could not read tensor {name} ({type(e).__name__}: {e})") from None
        return buf.view(TORCH_DTYPES[self.dtypes[name]]).reshape((stop - start, *shape[1:]) if shape else ())


def read_header(f: Path) -> tuple[int, dict]:
    """(byte offset where tensor data starts, header JSON) of a safetensors file."""
    with open(f, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if not 0 < n <= min(_MAX_HEADER, f.stat().st_size - 8):
            raise ValueError(f"header length {n} does not fit the file")
        header = json.loads(fh.read(n))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return 8 + n, header


def open_store(files: list[Path]) -> TensorStore:
    """The backend for a checkpoint's weight files (pickled ``.bin`` or safetensors; the caller checked consent)."""
    if files and all(f.suffix == ".bin" for f in files):
        return MemoryStore.from_pickles(files)
    return SafetensorsStore(files)
