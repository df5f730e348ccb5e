"""Turning a composed config node into its typed spec: shared by every ``*_spec()`` reader.

A node composed by Hydra carries its schema's class (``OmegaConf.get_type``); a plain dict (from a record, a
bench or a test) does not, and each reader picks the class its own way. This is the part that is the same.
"""

from __future__ import annotations

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
