"""Typed ``storage`` settings: where a point's merge inputs (the checkpoints' tensors) stay between points.

The same pattern as ``engines/spec.py`` (read its docstring): ``StorageSpec`` is the type of the ``storage``
field of the config's schema (``app/spec.ConfigSchema``, listed first in ``conf/config.yaml``'s defaults), so the
composed ``storage`` node is typed (``storage.devise=cpu`` or ``storage.dtype=[1]`` stop at
composition); the defaults are written here only, and the YAML keeps the comments. ``validate()`` says what
the types cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

STORAGE_DTYPES = ("float32", "bfloat16", "float16", "float64")  # torch dtypes a resident input may be narrowed to


@dataclass
class StorageSpec:
    """``storage``: where inputs stay (``device``) and the dtype they may be narrowed to (``dtype``)."""

    device: str | None = None  # None: the engine's device; "cpu": host RAM; "disk": re-read per point
    dtype: str = "float32"  # only narrows a wider checkpoint (bfloat16 halves fp32 checkpoints)

    def validate(self) -> StorageSpec:
        """What the types cannot say; a ``ConfigError`` naming the setting, else the spec itself."""
        if self.dtype not in STORAGE_DTYPES:
            words = ", ".join(STORAGE_DTYPES[:-1]) + " or " + STORAGE_DTYPES[-1]
            raise ConfigError(f"storage.dtype must be {words}, got {self.dtype!r}")
        if self.device is not None and not self.device.strip():
            raise ConfigError("storage.device must be null (the engine's device), cpu, disk or a device name, got ''")
        return self


def storage_spec(node: Any) -> StorageSpec:
    """The typed spec of a composed ``storage`` node or a plain dict (not validated)."""
    from omegaconf import DictConfig, OmegaConf

    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    if not isinstance(data, dict):
        raise ConfigError(f"storage must be a mapping of settings, got {node!r}")
    unknown = [str(k) for k in data if k not in ("device", "dtype")]
    if unknown:
        raise ConfigError(f"storage.{unknown[0]} is not a storage setting; its settings: device, dtype")
    return StorageSpec(**{str(k): v for k, v in data.items()})
