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
from ..weights.spec import ModelSpec

_PART_KEYS = (
    "tasks",
    "metric",
    "groups",
    "num_fewshot",
    "limit",
    "chat_template",
    "gen_kwargs",
    "judge",
    "prompt_file",
)
# Every setting of either engine (engines/spec.py); a key the chosen engine lacks is refused when its spec is built.
_ENGINE_KEYS = tuple(dict.fromkeys(f.name for cls in SPECS.values() for f in dataclasses.fields(cls)))
# fnmatch patterns of dotted keys that may be added (``*`` matches across dots). Keys the composed config already
# has can be overridden without ``+`` and are not checked here.
ADDABLE = (
    *(f"model.{f.name}" for f in dataclasses.fields(ModelSpec)),
    "merge.knobs.*",  # names are checked against the method's signature (points.preflight)
    "merge.anchor",
    "merge.deltas",
    "suite.task_dirs",
    "suite.include_defaults",
    *(f"suite.parts.*.{k}" for k in _PART_KEYS),
    "suite.parts.*.groups.*",
    "suite.parts.*.gen_kwargs.*",
    "suite.parts.*.judge.*",
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
