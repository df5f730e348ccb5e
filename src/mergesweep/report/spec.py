"""Typed ``tracking`` settings (``conf/tracking/*.yaml``): whether and where W&B logs a sweep, written once, here.

The same pattern as ``engines/spec.py`` (read its docstring): one class per option of the ``tracking`` group,
stored in Hydra's ``ConfigStore`` as ``tracking/<kind>_schema`` and listed first in the option's YAML, which keeps
the defaults only as commented ``#   key: value`` lines. Two classes, not one with optional keys: ``tracking=none``
has only ``enabled: false`` (records hold exactly that), and ``tracking=none tracking.mode=online`` stops at
composition instead of meaning nothing. ``report/tracking.py`` takes the spec; ``tracking_spec`` builds it from a
composed node or a plain dict (a record's config, a test's ``{"enabled": True, "project": "p"}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..typed import from_data, one_of, schema_and_data, store_schemas

WANDB_MODES = ("offline", "online", "disabled", "shared")  # wandb.init(mode=...)


@dataclass
class NoTracking:
    """``tracking=none``: records, samples and plots only."""

    enabled: bool = False

    def validate(self) -> NoTracking:
        if self.enabled:
            raise ConfigError("tracking=none has no W&B settings: choose tracking=wandb_offline to track")
        return self


@dataclass
class WandbTracking:
    """``tracking=wandb_offline``: one W&B run per point and a summary run per sweep (``report/tracking.py``)."""

    enabled: bool = True
    mode: str = "offline"  # WANDB_MODE, unless the environment sets it
    project: str = "mergesweep"
    entity: str | None = None  # None: the W&B account's default entity

    def validate(self) -> WandbTracking:
        one_of(self.mode, "tracking.mode", WANDB_MODES)
        if not self.project.strip():
            raise ConfigError("tracking.project must be a W&B project name, got ''")
        return self


TrackingSpec = NoTracking | WandbTracking
SPECS: dict[str, type[NoTracking] | type[WandbTracking]] = {"none": NoTracking, "wandb": WandbTracking}


def register() -> None:
    """Store the schemas the tracking YAMLs name (``tracking/<kind>_schema``); storing twice is harmless."""
    store_schemas("tracking", SPECS)


def tracking_spec(node: Any) -> TrackingSpec:
    """The typed spec of a composed ``tracking`` node (its schema's class) or of a plain dict (not validated).

    A plain dict is ``NoTracking`` when it holds nothing but ``enabled: false`` (``tracking=none``, or what
    ``verify`` sets for its re-runs), else ``WandbTracking`` (whose ``enabled`` defaults to true)."""
    cls, node = schema_and_data(node, list(SPECS.values()), "tracking")
    if cls is None:
        cls = NoTracking if node == {"enabled": False} else WandbTracking
    return from_data(cls, node, "tracking", "a tracking setting")
