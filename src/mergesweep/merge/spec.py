"""Typed merge settings: one schema per method, derived from the method itself, so a new method is its function
(one line in ``METHODS``) and a YAML file.

The same pattern as ``engines/spec.py`` (read its docstring), with one difference: knobs differ per method, and a
method already declares them, with their defaults, as the keyword-only parameters of its function
(``base.method_knobs``). Writing them again in a dataclass would be a second place for each default, so the schema
of method ``m`` (``MergeSpec`` with its name, its anchor and deltas roles, and a ``knobs`` node holding exactly the
function's knobs) is built from the function here, and ``register`` stores it as ``merge/<m>_schema``, which
``conf/merge/<m>.yaml`` lists first. The YAML then sets nothing and quotes the defaults as ``#   key: value``
comments (``tests/test_merge_spec.py`` holds them to the function).

* **At composition**: a knob the method does not have (``merge.knobs.densty=0.2``) stops Hydra. Knob values are
  ``Any`` there on purpose, like ``strength``: Hydra reads ``density=1`` as an int and the record keeps what it
  read (a ``float`` type would turn it into ``1.0`` and change records and point ids). Their values are checked by
  the preflight's dry run (``checks/preflight.knob_values``), which runs the method on a 4x4 tensor.
* **Roles**: ``anchor`` and ``deltas`` default to the method's (``METHOD_SOURCES``, else base + instruct); a YAML or
  an override may change them, and ``validate`` checks the pair.
* ``merge_spec`` turns a composed node, or a plain dict (a record's config, ``mergesweep-export``'s YAML, a test's
  ``{"name": "ties"}``), into its typed spec; a plain dict gets the method's defaults for what it leaves out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from omegaconf import MISSING

from ..errors import ConfigError, MergeConfigError
from ..typed import schema_and_data

if TYPE_CHECKING:
    from .base import MergeFn

ANCHORS = ("base", "instruct", "target")
DELTAS = ("instruct", "finetuned", "all", "adapter")
# A method's roles where they are not base + instruct (the defaults of its schema's ``anchor`` and ``deltas``).
METHOD_SOURCES: dict[str, tuple[str, str]] = {
    "residual": ("target", "instruct"),
    "adapter_transfer": ("instruct", "adapter"),
    "task_arithmetic": ("base", "all"),
    "ties": ("base", "all"),
    "dare_linear": ("base", "all"),
    "dare_ties": ("base", "all"),
    "model_stock": ("base", "all"),
}
MIN_DELTAS = {"model_stock": 2}


@dataclass
class MergeSpec:
    """``merge``: the method (``name``), what it starts from (``anchor``), what it adds (``deltas``) and its knobs.

    Each method's schema is a subclass made by ``method_schema`` whose ``knobs`` is a node of that method's knobs."""

    WHEN_SET: ClassVar[tuple[str, ...]] = ()

    name: str = MISSING
    anchor: str = "base"
    deltas: str = "instruct"
    knobs: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> MergeFn:
        """The method's function (``METHODS``), or a ``MergeConfigError`` listing the known ones."""
        from . import get_method

        return get_method(self.name)

    def sources(self) -> tuple[str, str]:
        """``(anchor role, deltas role)``, checked: known roles, and never instruct's own task vector added to it."""
        if self.anchor not in ANCHORS:
            raise MergeConfigError(f"merge.anchor must be one of {ANCHORS}, got {self.anchor!r}")
        if self.deltas not in DELTAS:
            raise MergeConfigError(f"merge.deltas must be one of {DELTAS}, got {self.deltas!r}")
        if self.anchor == "instruct" and self.deltas != "adapter":
            raise MergeConfigError(
                f"merge {self.name}: anchor instruct with deltas {self.deltas} would add instruct's own "
                "task vector to itself; use anchor base (or deltas adapter)"
            )
        return self.anchor, self.deltas

    def validate(self) -> MergeSpec:
        """The method exists and is the schema's, its roles make sense and every knob is one it takes; else one
        line: ``ConfigError`` for an unknown method, ``MergeConfigError`` for the rest (knob *values* need the
        strength: ``checks/preflight.knob_values``)."""
        from .base import check_knobs

        own = getattr(type(self), "METHOD", None)
        if self.name not in SPECS:
            raise ConfigError(f"unknown merge method {self.name!r}; known: {', '.join(sorted(SPECS))}")
        if own is not None and self.name != own:  # merge.name=ties on linear's settings
            raise MergeConfigError(
                f"merge.name={self.name} does not change the method: choose it with merge={self.name}"
            )
        check_knobs(self.method, self.knobs)
        self.sources()
        return self


def knob_defaults(fn: MergeFn) -> dict[str, Any]:
    """``{knob: default}`` of a method, mappings as plain dicts (what a composed ``knobs`` node holds)."""
    from .base import method_knobs

    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in method_knobs(fn).items()}


def method_schema(name: str, fn: MergeFn) -> type[MergeSpec]:
    """The schema of one method: ``MergeSpec`` with the method's name and roles as defaults and ``knobs`` a node
    of exactly its knobs (each ``Any``, see the module docstring), in the function's order."""
    camel = "".join(w.title() for w in name.split("_"))
    knobs = [(k, Any, _default(v)) for k, v in knob_defaults(fn).items()]
    knob_cls = dataclasses.make_dataclass(f"{camel}Knobs", knobs)
    anchor, deltas = METHOD_SOURCES.get(name, ("base", "instruct"))
    cls = dataclasses.make_dataclass(
        f"{camel}Merge",
        [
            ("name", str, field(default=name)),
            ("anchor", str, field(default=anchor)),
            ("deltas", str, field(default=deltas)),
            ("knobs", knob_cls, field(default_factory=knob_cls)),
        ],
        bases=(MergeSpec,),
        namespace={"METHOD": name, "__doc__": f"``merge={name}`` (schema made from its function, merge/spec.py)."},
    )
    for c in (knob_cls, cls):  # pickled by reference (submitit launchers pickle the job's config)
        c.__module__ = __name__
        globals()[c.__name__] = c
    return cls


def _default(value: Any) -> Any:
    return field(default_factory=lambda: dict(value)) if isinstance(value, dict) else field(default=value)


def _specs() -> dict[str, type[MergeSpec]]:
    from . import METHODS

    return {name: method_schema(name, fn) for name, fn in METHODS.items()}


SPECS: dict[str, type[MergeSpec]] = _specs()


def register() -> None:
    """Store the schemas the merge YAMLs name (``merge/<method>_schema``); storing twice is harmless."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, cls in SPECS.items():
        store.store(group="merge", name=f"{name}_schema", node=cls)


def merge_spec(node: Any) -> MergeSpec:
    """The typed spec of a composed ``merge`` node (its schema's class) or of a plain dict (by ``name``; what it
    leaves out, or sets to null, is the method's default). Not validated: ``validate()`` is the caller's."""
    cls, data = schema_and_data(node, list(SPECS.values()), "merge")
    if cls is None:
        cls = SPECS.get(str(data.get("name")), MergeSpec)
    known = [f.name for f in dataclasses.fields(MergeSpec)]
    unknown = [str(k) for k in data if k not in known]
    if unknown:
        raise MergeConfigError(f"merge.{unknown[0]} is not a merge setting; its settings: {', '.join(known)}")
    if data.get("name") in (None, "", MISSING):
        raise MergeConfigError("merge.name is not set (the merge config must name its method)")
    plain = {str(k): v for k, v in data.items() if v is not None and v != ""}
    spec = cls()
    spec.knobs = dict(spec.knobs) if isinstance(spec.knobs, dict) else dataclasses.asdict(spec.knobs)
    spec.knobs.update(dict(plain.pop("knobs", None) or {}))
    return dataclasses.replace(spec, **plain)
