"""The versioned record schema: the typed parts of a record and their JSON form (``to_json``/``from_json``).

Kept apart from ``records.py`` (where records are read, written and found) so the shape of a record reads in one
place; ``records`` re-exports every name here, and the rest of the code imports them from there.

Schema (``SCHEMA = 3``; schema-1 records, which lack ``seeds.if_checkers``, and schema-2 records, which lack
``samples_sha256`` and ``flags``, are still read; ``verify`` says which checks an older record cannot have):

* ``summary.icl``: the ICL part's score, the *unweighted* mean over its tasks of each task's mean per-sample
  headline metric (``metrics.icl.metric``, e.g. ``acc``); every task weighs the same whatever its size.
* ``summary.if``: the same over the IF part's tasks with its headline metric (e.g. ``prompt_level_strict_acc``
  for IFEval, a win rate for judged suites). Both lie in [0, 1]; a suite without that part has ``None``.
* ``ci.<part>``: a seeded percentile bootstrap 95% CI of that mean (tasks resampled item-wise, weights fixed).
* ``metrics.<part>.tasks.<task>``: every metric lm-eval reported for the task (unweighted over its items).
* ``samples.<task>``: per-sample outputs, relative to the sweep folder (enough to re-score the point).
* ``seeds.if_checkers``: the seed IFEval's checkers run under, per item (``evals/tasks/ifeval/utils.py``).
* ``samples_sha256.<task>``: sha256 of that samples file as written; ``verify`` refuses a file edited since
  (a rewritten response whose stored score was left as is re-scores the same, so only the hash shows it).
* ``flags``: finite but degenerate outcomes, e.g. ``all_generations_empty`` (the model broke at this strength: a
  result, shown by ``status``, the report and the figures, not a failure).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SCHEMA = 3
READABLE_SCHEMAS = (1, 2, 3)


class RecordError(ValueError):
    """A record file that cannot be read as a complete record of a known schema."""


@dataclass
class Summary:
    """Headline numbers (see the module docstring for their exact definition); ``None`` = no such part."""

    icl: float | None = None
    if_: float | None = None

    def to_json(self) -> dict[str, float | None]:
        return {"icl": self.icl, "if": self.if_}

    def get(self, part: str) -> float | None:
        """The number of part ``icl`` or ``if`` (the JSON key; ``if`` is a keyword, hence the field ``if_``)."""
        return self.to_json().get(part)

    @classmethod
    def from_json(cls, d: dict) -> Summary:
        return cls(icl=d.get("icl"), if_=d.get("if"))


@dataclass
class CI:
    """Percentile bootstrap interval of a part's macro mean."""

    low: float
    high: float
    level: float = 0.95
    n_resamples: int = 0
    seed: int = 0


@dataclass
class PartMetrics:
    """One part (``icl`` or ``if``): headline metric name, per-task metrics and how they were obtained."""

    metric: str
    tasks: dict[str, dict[str, Any]]
    chat_template: bool = False
    num_fewshot: dict[str, int | None] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)
    fewshot_seed: int | None = None
    limit: int | float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # groups, judge, ...: kept as written

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra"}
        return {**d, **self.extra}

    @classmethod
    def from_json(cls, d: dict) -> PartMetrics:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in known}, extra={k: v for k, v in d.items() if k not in known})


_TIMING_FIELDS = ("merge_s", "swap_s", "reset_s", "engine_start_s", "total_s")


@dataclass
class Timings:
    """Seconds spent on the point. JSON keeps schema 1's flat layout (``eval_<part>_s`` per part)."""

    merge_s: float = 0.0  # includes writing into the live parameters when the engine takes points in place
    swap_s: float = 0.0  # handing tensors to the engine's loaders (~0 when every tensor was written in place)
    reset_s: float = 0.0
    engine_start_s: float = 0.0
    total_s: float = 0.0
    eval_s: dict[str, float] = field(default_factory=dict)  # part -> seconds
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def switch_s(self) -> float:
        """Merge + swap + prefix-cache reset: the cost of moving the engine to this point."""
        return self.merge_s + self.swap_s + self.reset_s

    def to_json(self) -> dict[str, float]:
        return {
            **{k: getattr(self, k) for k in _TIMING_FIELDS},
            **{f"eval_{p}_s": v for p, v in self.eval_s.items()},
            **self.extra,
        }

    @classmethod
    def from_json(cls, d: dict) -> Timings:
        t = cls()
        for k in _TIMING_FIELDS:
            if k in d:
                setattr(t, k, float(d[k]))
        for k, v in d.items():
            if k.startswith("eval_") and k.endswith("_s"):
                t.eval_s[k[len("eval_") : -len("_s")]] = float(v)
            elif k not in _TIMING_FIELDS:
                t.extra[k] = v
        return t


@dataclass
class Record:
    """Everything one finished point produced; ``to_json``/``from_json`` are the on-disk schema."""

    point_id: str
    sweep: str
    family: str
    method: str
    lam: float
    summary: Summary
    metrics: dict[str, PartMetrics]
    ci: dict[str, CI] = field(default_factory=dict)
    extrapolation: bool = False
    knobs: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)  # task -> path relative to the sweep folder
    samples_sha256: dict[str, str] = field(default_factory=dict)  # task -> sha256 of its samples file (schema 3)
    flags: list[str] = field(default_factory=list)  # degenerate but finite outcomes (schema 3)
    times: Timings = field(default_factory=Timings)
    engine: dict[str, Any] = field(default_factory=dict)
    merge_inputs: dict[str, Any] = field(default_factory=dict)
    seeds: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)  # git, packages, machine, checkpoints (sha256s)
    config: dict[str, Any] = field(default_factory=dict)  # the resolved, redacted Hydra config
    schema: int = SCHEMA
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": self.schema}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "schema":
                continue
            if f.name == "summary" or f.name == "times":
                v = v.to_json()
            elif f.name == "metrics":
                v = {p: m.to_json() for p, m in v.items()}
            elif f.name == "ci":
                v = {p: dataclasses.asdict(c) for p, c in v.items()}
            out[f.name] = v
        return out

    @classmethod
    def from_json(cls, d: Any) -> Record:
        """Parse a record of any readable schema; RecordError says what is wrong."""
        if not isinstance(d, dict):
            raise RecordError(f"not a JSON object but {type(d).__name__}")
        if d.get("schema") not in READABLE_SCHEMAS:
            raise RecordError(f"unknown schema {d.get('schema')!r} (this version reads {READABLE_SCHEMAS})")
        if d.get("complete") is not True:
            raise RecordError("not marked complete")
        try:
            return cls(
                point_id=d["point_id"],
                sweep=d.get("sweep", ""),
                family=d["family"],
                method=d["method"],
                lam=float(d["lam"]),
                summary=Summary.from_json(d["summary"]),
                metrics={p: PartMetrics.from_json(m) for p, m in (d.get("metrics") or {}).items()},
                ci={p: CI(**c) for p, c in (d.get("ci") or {}).items() if c},
                extrapolation=bool(d.get("extrapolation", False)),
                knobs=d.get("knobs") or {},
                samples=d.get("samples") or {},
                samples_sha256=d.get("samples_sha256") or {},
                flags=list(d.get("flags") or []),
                times=Timings.from_json(d.get("times") or {}),
                engine=d.get("engine") or {},
                merge_inputs=d.get("merge_inputs") or {},
                seeds=d.get("seeds") or {},
                provenance=d.get("provenance") or {},
                config=d.get("config") or {},
                schema=int(d["schema"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RecordError(f"malformed record ({type(e).__name__}: {e})") from None


@dataclass
class Failure:
    """A point that ran and failed: never a result, only a reason for ``mergesweep status``."""

    point_id: str
    reason: str
    time: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # e.g. lam, overrides, stage
