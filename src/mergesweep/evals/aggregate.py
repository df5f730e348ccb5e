"""The summary rule, written once: a part's macro mean, its group means and its bootstrap CI.

Why one module: ``suite.run`` computes these numbers for the record and ``verify`` recomputes them from the
saved samples. When each wrote the rule out itself, a change to one (a weight, a group rule, a CI setting) made
``verify`` quietly disagree with every new record, or worse, agree with a rule the suite no longer used. Both
now call ``aggregate_part``; the record's typed parts (``records.Summary``, ``records.CI``) are its outputs.

The rule (the record schema documents it too): a part's score is the *unweighted* mean over its tasks of each
task's mean per-sample headline metric; a group is the same over the tasks whose names match its pattern; the
CI is a seeded percentile bootstrap of the part's mean, tasks resampled item-wise with their weights fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch

from ..store.records import CI, Summary
from . import stats

PerSample = Mapping[str, Sequence[float]]  # task -> per-sample headline scores, in doc_id order
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Bootstrap:
    """How a CI is drawn: resamples (0 = no CI), seed and level; a record's CI carries all three."""

    n_resamples: int
    seed: int
    level: float = DEFAULT_LEVEL

    @classmethod
    def of(cls, ci: CI | None) -> Bootstrap:
        """The settings a recorded CI was drawn with, so a recomputation draws the same resamples (None: none)."""
        if ci is None:
            return cls(n_resamples=0, seed=0)
        return cls(n_resamples=ci.n_resamples, seed=ci.seed, level=ci.level)


@dataclass(frozen=True)
class PartAggregate:
    """One part's summary numbers: the record's ``summary.<part>``, ``metrics.<part>.groups`` and ``ci.<part>``."""

    mean: float
    groups: dict[str, float] = field(default_factory=dict)
    ci: CI | None = None


def part_mean(per_sample: PerSample) -> float:
    """Mean over tasks of each task's mean score: every task weighs the same whatever its size."""
    return stats.macro_mean(per_sample)


def group_means(per_sample: PerSample, patterns: Mapping[str, str]) -> dict[str, float]:
    """``{group: macro mean of the tasks matching its fnmatch pattern}`` (a group matching no task is NaN)."""
    return {g: part_mean({t: v for t, v in per_sample.items() if fnmatch(t, pat)}) for g, pat in patterns.items()}


def bootstrap_ci(per_sample: PerSample, boot: Bootstrap) -> CI | None:
    """Percentile bootstrap CI of the part's mean; None when ``boot`` asks for no resamples."""
    drawn = stats.bootstrap_macro_ci(per_sample, n_resamples=boot.n_resamples, seed=boot.seed, level=boot.level)
    if not drawn:
        return None
    return CI(low=drawn["low"], high=drawn["high"], level=drawn["level"], n_resamples=boot.n_resamples, seed=boot.seed)


def aggregate_part(per_sample: PerSample, groups: Mapping[str, str], boot: Bootstrap) -> PartAggregate:
    """Every summary number of one part from its per-sample scores (``groups``: {name: task-name pattern})."""
    return PartAggregate(
        mean=part_mean(per_sample), groups=group_means(per_sample, groups), ci=bootstrap_ci(per_sample, boot)
    )


def summary(parts: Mapping[str, PartAggregate]) -> Summary:
    """The record's headline numbers from the parts a suite has (a missing part is ``None``)."""
    return Summary.from_json({p: a.mean for p, a in parts.items()})


def cis(parts: Mapping[str, PartAggregate]) -> dict[str, CI]:
    """The record's ``ci``: the parts that have one (none with ``bootstrap=0``)."""
    return {p: a.ci for p, a in parts.items() if a.ci is not None}
