"""Typed suite settings: every key ``conf/suite/*.yaml`` may hold, its type and its default, written once, here.

The same pattern as ``engines/spec.py`` (read its docstring): ``SuiteSpec`` is stored in Hydra's ``ConfigStore`` as
``suite/suite_schema`` and each suite YAML that is not made of other suites lists it first in its ``defaults``, so the
composed ``suite`` node is typed: ``suite.parts.icl.limt=5`` or ``suite.parts.icl.chat_template=maybe`` stop at
composition. ``parts`` maps a part's name (``icl``, ``if``) to a ``PartSpec``; a part comes from a suite YAML (an
override can set or add a part's keys, ``+suite.parts.if.prompt_file=...``, but OmegaConf cannot add a whole typed
part: ``+suite.parts.icl.tasks=[...]`` on a suite without an ICL part stops at composition).

* **Types**: ``limit`` and ``num_fewshot`` are ``Any`` at composition on purpose, like ``strength``: Hydra reads
  ``limit=5`` as an int and ``limit=0.5`` as a float (a fraction of the docs), the record keeps what it read, and
  ``validate()`` names a bad value in one line before any engine starts. ``judge`` stays a mapping at
  composition, recorded as given: ``judges.spec.judge_spec`` turns it into a typed ``JudgeSpec`` where it is used
  (its module docstring says why it is not typed here).
* **Keys that exist only when given** (``WHEN_SET``) are left out of records while they hold their default
  (``points.container``), so a suite that does not set them is the data it was before this schema. ``num_fewshot``
  defaults to ``MISSING``, not ``None``: a YAML's explicit ``num_fewshot: null`` (each task's own) stays in its
  records, as it did; the typed spec reads both as ``None``.
* ``suite_spec`` turns a composed node, or a plain dict (a record's config, a test's or a bench's suite), into the
  typed spec the evals take (``evals/suite.py``, ``checks/sizing.py``); ``validate()`` checks what the types cannot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import MISSING

from ..errors import ConfigError, SuiteError
from ..typed import schema_and_data

PART_KINDS = ("icl", "if")


@dataclass
class PartSpec:
    """One part of a suite (``suite.parts.<name>``): lm-eval tasks, the headline metric and how they are run."""

    WHEN_SET: ClassVar[tuple[str, ...]] = ("groups", "num_fewshot", "gen_kwargs", "judge", "prompt_file")

    tasks: list[str] = MISSING  # lm-eval task names (shipped under evals/tasks, a suite's task_dirs, or lm-eval's)
    metric: str = MISSING  # the headline metric, averaged over the part's tasks
    groups: dict[str, str] = field(default_factory=dict)  # {name: fnmatch pattern}: macro averages of task subsets
    num_fewshot: Any = MISSING  # None (or unset): each task's own
    chat_template: bool = False  # prompts through the instruct chat template, at every lam
    limit: Any = None  # None: every doc; a count >= 1; or a fraction in (0, 1)
    gen_kwargs: dict[str, Any] = field(default_factory=dict)  # lm-eval's gen_kwargs (max_gen_toks, ...)
    judge: dict[str, Any] = field(default_factory=dict)  # a judged part's judge: keys of judges/spec.JudgeSpec
    prompt_file: str | None = None  # an IFEval-format JSONL every task of the part reads instead (prompts.py)

    def validate(self, key: str) -> PartSpec:
        """``limit`` (None, a count >= 1 or a fraction in (0, 1)) and ``num_fewshot`` (None or >= 0); ``key`` is the
        part's dotted name (``suite.parts.icl``) for the message."""
        from ..checks.preflight import integer

        limit = self.limit
        if limit is not None:
            ok = not isinstance(limit, bool) and (
                (isinstance(limit, int) and limit >= 1) or (isinstance(limit, float) and 0.0 < limit < 1.0)
            )
            if not ok:
                raise ConfigError(f"{key}.limit must be null, a count >= 1 or a fraction in (0, 1), got {limit!r}")
        if self.num_fewshot is not None:
            integer(self.num_fewshot, f"{key}.num_fewshot", 0)
        return self


@dataclass
class SuiteSpec:
    """``suite``: a named set of parts, each scored on its own; ``include_defaults`` adds lm-eval's built-in tasks."""

    WHEN_SET: ClassVar[tuple[str, ...]] = ("task_dirs",)

    name: str = MISSING
    include_defaults: bool = False  # lm-eval's built-in (hub) tasks on the include path too
    parts: dict[str, PartSpec] = field(default_factory=dict)
    task_dirs: list[str] = field(default_factory=list)  # more folders of lm-eval task YAMLs (+suite.task_dirs=[...])

    def validate(self) -> SuiteSpec:
        """Parts present and known, and each part's own values; a one-line error, else the spec itself. Task names
        and data need lm-eval: ``evals.suite.validate`` checks them."""
        if not self.parts:
            raise SuiteError(f"suite {self.name!r} has no parts")
        for pname, part in self.parts.items():
            if pname not in PART_KINDS:
                raise SuiteError(f"suite {self.name!r}: unknown part {pname!r} (parts are {PART_KINDS})")
            part.validate(f"suite.parts.{pname}")
            if not part.metric:
                raise SuiteError(f"suite {self.name!r}, part {pname!r}: no headline `metric`")
        return self


def register() -> None:
    """Store the schema the suite YAMLs name (``suite/suite_schema``); storing twice is harmless."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="suite", name="suite_schema", node=SuiteSpec)


def suite_spec(node: Any) -> SuiteSpec:
    """The typed spec of a composed ``suite`` node, of a plain dict or of a spec (returned as it is); not validated.
    A key the schema does not have is a ``ConfigError`` naming it."""
    if isinstance(node, SuiteSpec):
        return node
    _, data = schema_and_data(node, [SuiteSpec], "suite")
    _known(data, SuiteSpec, "suite")
    parts = data.get("parts") or {}
    if not isinstance(parts, Mapping):
        raise ConfigError(f"suite.parts must be a mapping of parts, got {parts!r}")
    typed = {str(p): part_spec(v, f"suite.parts.{p}") for p, v in parts.items()}
    rest = {str(k): v for k, v in data.items() if k != "parts" and v is not None}
    return SuiteSpec(**{**rest, "parts": typed})


def part_spec(data: Any, key: str = "part") -> PartSpec:
    """One part from a plain dict (or a ``PartSpec``, returned as it is); ``MISSING`` and null read as unset."""
    if isinstance(data, PartSpec):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{key} must be a mapping of settings, got {data!r}")
    _known(data, PartSpec, key)
    plain = {str(k): v for k, v in data.items() if v != MISSING}
    if "tasks" not in plain:
        raise ConfigError(f"{key}.tasks is not set (a part names its lm-eval tasks)")
    for k in ("groups", "gen_kwargs", "judge"):
        plain[k] = dict(plain.get(k) or {})
    plain.setdefault("metric", "")
    plain["tasks"] = list(plain["tasks"] or [])
    return PartSpec(**{**plain, "num_fewshot": plain.get("num_fewshot")})


def _known(data: Mapping[Any, Any], cls: type, key: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [str(k) for k in data if k not in known]
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]} is not a setting of {key}; its settings: {', '.join(known)}")
