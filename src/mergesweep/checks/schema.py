"""Which keys a ``+key=value`` override may add: the keys the code reads, and the free-form ``extra`` map.

Why: Hydra accepts any ``+model.note=...`` silently; the value changes the point id (the whole ``model`` section
is part of it), lands in records and W&B, and is read by nothing. A mistyped optional key (``+model.tide=false``)
would be ignored the same way. Adding a key is only allowed where code reads it; notes go under ``extra.*``,
which is kept in the record's config but is not part of the point id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from fnmatch import fnmatchcase

from ..engines.spec import SPECS
from ..evals.spec import PartSpec, SuiteSpec
from ..merge.spec import SPECS as MERGE_SPECS
from ..merge.spec import MergeSpec
from ..weights.spec import ModelSpec

# PartSpec's field types as written (``dict[str, Any]``...): a mapping setting takes added keys under it.
_PART_TYPES = {f.name: str(f.type) for f in dataclasses.fields(PartSpec)}

# Every setting of either engine (engines/spec.py); a key the chosen engine lacks is refused when its spec is built.
_ENGINE_KEYS = tuple(dict.fromkeys(f.name for cls in SPECS.values() for f in dataclasses.fields(cls)))
# Every knob of any merge method (merge/spec.py, from the methods' signatures); a knob the chosen method lacks is
# refused by the preflight (``MergeSpec.validate``). A knob that is a mapping (per_module's scales) takes any part.
_KNOBS = {k: v for cls in MERGE_SPECS.values() for k, v in dataclasses.asdict(cls()).get("knobs", {}).items()}


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


# fnmatch patterns of dotted keys that may be added (``*`` matches across dots). Keys the composed config already
# has can be overridden without ``+`` and are not checked here.
ADDABLE = (
    *(f"model.{k}" for k in _fields(ModelSpec)),
    *(f"merge.{k}" for k in _fields(MergeSpec) if k not in ("name", "knobs")),
    *(f"merge.knobs.{k}" for k in _KNOBS),
    *(f"merge.knobs.{k}.*" for k, v in _KNOBS.items() if isinstance(v, dict)),
    *(f"suite.{k}" for k in _fields(SuiteSpec) if k not in ("name", "parts")),
    *(f"suite.parts.*.{k}" for k in _fields(PartSpec)),
    *(f"suite.parts.*.{k}.*" for k, t in _PART_TYPES.items() if t.startswith("dict")),
    *(f"engine.{k}" for k in _ENGINE_KEYS),
    "engine.extra_args.*",  # passed to the engine as they are
    "storage.*",
    "tracking.*",
    "sweep.*",
    "extra.*",  # free-form notes: kept in the record's config, not part of the point id
    "block_strengths",  # set by hydra/sweeper=blocks
    "objective",
    "objective.*",
)


def added_keys(overrides: Iterable[str]) -> list[str]:
    """Dotted keys of ``+key=value`` / ``++key=value`` overrides (``~`` deletions are not additions)."""
    out = []
    for ov in overrides:
        key, sep, _ = str(ov).partition("=")
        if sep and key.startswith("+"):
            out.append(key.lstrip("+").split("@")[0])
    return out


def unknown_added(overrides: Iterable[str], groups: Iterable[str]) -> list[str]:
    """Added keys that are neither a config group (``+experiment=...``) nor in ``ADDABLE``."""
    group_names = set(groups)
    return [
        k
        for k in added_keys(overrides)
        if k not in group_names and not k.startswith("hydra") and not any(fnmatchcase(k, p) for p in ADDABLE)
    ]
