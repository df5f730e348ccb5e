"""Turning a composed config node into its typed spec: shared by every ``*_spec()`` reader and schema module.

A node composed by Hydra carries its schema's class (``OmegaConf.get_type``); a plain dict (from a record, a
bench or a test) does not, and each reader picks the class its own way. The rest is the same for every group:
storing the schemas, refusing a key the class does not have, naming the allowed values of a string setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def schema_and_data(node: Any, classes: list[type[T]], what: str) -> tuple[type[T] | None, dict[Any, Any]]:
    """(the node's schema class if it is one of ``classes``, else None; the node as a resolved plain dict).

    Raises ``ConfigError`` naming ``what`` when the node is not a mapping.
    """
    from omegaconf import DictConfig, OmegaConf

    cls: type[T] | None = None
    if isinstance(node, DictConfig):
        typed = OmegaConf.get_type(node)
        cls = typed if typed in classes else None
        node = OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, dict):
        raise ConfigError(f"{what} must be a mapping of settings, got {node!r}")
    return cls, node


def from_data(cls: type[T], data: Mapping[Any, Any], what: str, setting_of: str) -> T:
    """``cls(**data)``; a key ``cls`` does not have is a ``ConfigError`` naming it and listing the class's keys.

    Such a key gets past Hydra with ``+`` (``+engine.batch_size=8``: ``+`` adds even to a typed node) or comes in a
    plain dict. ``setting_of`` ends the sentence: ``engine.x is not <a setting of the vllm engine>``.
    """
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]  # every spec is a dataclass
    unknown = [str(k) for k in data if k not in known]
    if unknown:
        raise ConfigError(f"{what}.{unknown[0]} is not {setting_of}; its settings: {', '.join(known)}")
    return cls(**{str(k): v for k, v in data.items()})


def one_of(value: Any, key: str, allowed: tuple[str, ...]) -> None:
    """A ``ConfigError`` unless ``value`` is one of ``allowed``: ``<key> must be a, b or c, got 'x'``."""
    if value not in allowed:
        words = ", ".join(allowed[:-1]) + " or " + allowed[-1]
        raise ConfigError(f"{key} must be {words}, got {value!r}")


def store_schemas(group: str, schemas: Mapping[str, type]) -> None:
    """Store each class as ``<group>/<name>_schema`` in Hydra's ``ConfigStore``, the name each option's YAML lists
    first in its defaults; storing twice is harmless."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, cls in schemas.items():
        store.store(group=group, name=f"{name}_schema", node=cls)
