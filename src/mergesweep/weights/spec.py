"""Typed ``storage`` settings (where a point's merge inputs stay between points) and ``model`` settings (the
checkpoints of a family, ``ModelSpec``).

The same pattern as ``engines/spec.py`` (read its docstring): ``StorageSpec`` is the type of the ``storage``
field of the config's schema (``app/spec.ConfigSchema``, listed first in ``conf/config.yaml``'s defaults), so the
composed ``storage`` node is typed (``storage.devise=cpu`` or ``storage.dtype=[1]`` stop at
composition); the defaults are written here only, and the YAML keeps the comments. ``validate()`` says what
the types cannot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from omegaconf import MISSING

from ..errors import ConfigError
from ..typed import from_data, one_of, schema_and_data, store_schemas

STORAGE_DTYPES = ("float32", "bfloat16", "float16", "float64")  # torch dtypes a resident input may be narrowed to


@dataclass
class StorageSpec:
    """``storage``: where inputs stay (``device``) and the dtype they may be narrowed to (``dtype``)."""

    device: str | None = None  # None: the engine's device; "cpu": host RAM; "disk": re-read per point
    dtype: str = "float32"  # only narrows a wider checkpoint (bfloat16 halves fp32 checkpoints)

    def validate(self) -> StorageSpec:
        """What the types cannot say; a ``ConfigError`` naming the setting, else the spec itself."""
        one_of(self.dtype, "storage.dtype", STORAGE_DTYPES)
        if self.device is not None and not self.device.strip():
            raise ConfigError("storage.device must be null (the engine's device), cpu, disk or a device name, got ''")
        return self


def storage_spec(node: Any) -> StorageSpec:
    """The typed spec of a composed ``storage`` node or a plain dict (not validated)."""
    _, data = schema_and_data(node, [StorageSpec], "storage")
    return from_data(StorageSpec, data, "storage", "a storage setting")


MODEL_DTYPES = ("auto", "float32", "bfloat16", "float16", "float", "half")  # what both engines take as a dtype
_FAMILY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # a point id starts with it; records' file names too


@dataclass
class ModelSpec:
    """``model`` (``conf/model/*.yaml``, one file per family): the checkpoints of a family, by role, and how to read
    them. Which roles a merge needs (``target`` for ``residual``, ``adapter`` for ``adapter_transfer``) is the
    merge's to check (``merge/sources.py``); this spec checks only its own values.

    ``target``, ``adapter``, ``tied``, ``finetuned`` and ``hf_token`` exist only when given (``WHEN_SET``): most
    families have none of them, and their records do not hold them."""

    WHEN_SET: ClassVar[tuple[str, ...]] = ("target", "adapter", "tied", "finetuned", "hf_token")

    family: str = MISSING  # names the family in point ids and file names
    base: str = MISSING  # folder or hub id of the base checkpoint
    instruct: str = MISSING  # folder or hub id of the instruct (fine-tuned) checkpoint
    target: str | None = None  # instruction residuals: the checkpoint the residual is added to
    adapter: str | None = None  # adapter transfer: a PEFT LoRA folder trained on ``base``
    revision: str | None = None  # a branch/tag for every hub id (None = main)
    dtype: str = "auto"  # the engine's dtype (``engine.dtype: ${model.dtype}``); merges compute in fp32
    tied: bool | None = None  # tie_word_embeddings as declared; ``mergesweep check`` compares it with the hub
    allow_pickle: bool = False  # true allows pickled *.bin weights (they can run code when loaded)
    finetuned: list[str] | None = None  # more fine-tunes of ``base`` (multi-model merges: merge.deltas=all)
    hf_token: str | None = None  # gated hub ids: ${oc.env:HF_TOKEN} only (a literal is refused); redacted in records

    def validate(self) -> ModelSpec:
        """What the types cannot say; a ``ConfigError`` naming the setting, else the spec itself."""
        if not _FAMILY.fullmatch(str(self.family)) or "__" in str(self.family):
            raise ConfigError(
                f"model.family must be a plain name (letters, digits, ._+-; no '__'), got {self.family!r}"
            )
        for key in ("base", "instruct", "target", "adapter", "revision"):
            value = getattr(self, key)
            if value is not None and not str(value).strip():
                raise ConfigError(f"model.{key} must be a folder or hub id, got ''")
        if any(not str(p).strip() for p in self.finetuned or []):
            raise ConfigError(f"model.finetuned must be a list of folders or hub ids, got {self.finetuned!r}")
        one_of(self.dtype, "model.dtype", MODEL_DTYPES)
        return self


def register() -> None:
    """Store the schema the model YAMLs name (``model/model_schema``); storing twice is harmless."""
    store_schemas("model", {"model": ModelSpec})


def model_spec(node: Any) -> ModelSpec:
    """The typed spec of a composed ``model`` node or a plain dict (not validated); a family's own YAML outside
    ``conf/`` (``--config-dir``) without the schema is read the same way."""
    _, data = schema_and_data(node, [ModelSpec], "model")
    spec = from_data(ModelSpec, data, "model", "a model setting")
    missing = [k for k in ("family", "base", "instruct") if data.get(k) in (None, MISSING)]
    if missing:
        raise ConfigError(f"model.{missing[0]} is not set (the model config must name it)")
    return spec
