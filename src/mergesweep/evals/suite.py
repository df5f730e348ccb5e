"""Run a suite (ICL part + IF part, each a list of lm-eval tasks) against an engine's lm-eval model.

A suite config (``conf/suite/*.yaml``, typed by ``spec.SuiteSpec``) names, per part, the lm-eval tasks, the headline
metric, the chat-template policy, few-shot count and limit; this module takes the typed spec (or a plain dict, which
it reads through ``spec.suite_spec``). Everything goes through ``lm_eval.simple_evaluate`` with
the project's task folder on lm-eval's ``TaskManager`` include path; we only aggregate and save.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import guards
from ..errors import SuiteError  # defined in errors.py; re-exported here
from ..store.records import PartMetrics
from . import aggregate, hub, judges, prompts, seeded
from .spec import PART_KINDS, PartSpec, SuiteSpec, part_spec, suite_spec

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

log = logging.getLogger(__name__)
TASKS_DIR = Path(__file__).parent / "tasks"
__all__ = ["PART_KINDS", "SuiteError", "SuiteResult", "part_groups", "run", "task_manager", "validate"]


@lru_cache(maxsize=4)
def task_manager(include_defaults: bool = False, extra: tuple[str, ...] = ()) -> TaskManager:
    """lm-eval's TaskManager over our task folder, a suite's ``task_dirs`` (``extra``) and lm-eval's built-ins
    when a suite asks for them."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(TASKS_DIR), *extra], include_defaults=include_defaults)


def validate(suite: SuiteSpec | Mapping[str, Any]) -> None:
    """Fail before any engine starts: the spec's own checks (``SuiteSpec.validate``: parts, numbers, metrics), then
    unknown task names and their data."""
    spec = suite_spec(suite).validate()
    tm = task_manager(spec.include_defaults, prompts.include_paths(spec))
    known = set(tm.all_tasks)
    for pname, part in spec.parts.items():
        unknown = [t for t in part.tasks if t not in known]
        if unknown:
            local = sorted(t for t in known if not t.startswith("_"))[:30] if not spec.include_defaults else []
            raise SuiteError(
                f"suite {spec.name!r}, part {pname!r}: unknown task(s) {unknown}"
                + (f"; local tasks: {local}" if local else "")
            )
        for group, pattern in part_groups(part)[1].items():
            log.warning(
                "suite %r, part %r: group %r (%r) matches none of the chosen tasks; dropped (the record says so "
                "under metrics.%s.groups_dropped)",
                spec.name,
                pname,
                group,
                pattern,
                pname,
            )
        _check_data(tm, spec.name, pname, part.tasks, prompts.task_specs(tm, part))
        if part.judge:
            judges.check_part(part)


def part_groups(part: PartSpec | Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(groups that match some of the part's tasks, groups that match none): {name: pattern} each.

    Why drop rather than refuse: choosing a subset of a suite's tasks (``suite.parts.icl.tasks=[...]``) is what
    lm-eval users do with ``--tasks``; a group of the full suite that none of them belongs to has no value.
    """
    part = part_spec(part)
    kept: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for group, pattern in part.groups.items():
        (kept if any(fnmatch(t, pattern) for t in part.tasks) else dropped)[group] = pattern
    return kept, dropped


def _check_data(tm: Any, suite_name: str | None, pname: str, tasks: list[str], specs: list[Any]) -> None:
    """Data problems surface here, not after the engine started.

    Hub datasets must be in the local cache when ``datasets`` is offline (SuiteError naming each one);
    tasks on shipped data are built now, so a malformed file raises its DataError (file and line) here; IFEval's
    scorer is run on a fixed answer (``seeded.check_scorer``), so a missing NLTK resource is found here too.
    """
    cfgs = {t: getattr(tm.task_index.get(t), "cfg", None) for t in tasks}
    if hub.offline():
        missing = hub.missing_offline(cfgs, tasks)
        if missing:
            raise SuiteError(
                f"suite {suite_name!r}, part {pname!r}: dataset not available offline: "
                f"{', '.join(missing)} (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set and the datasets "
                f"cache lacks them; datasets said: {next(iter(missing.values()))}). Run once with "
                "offline=false to download them, or use a suite with shipped data (icl_classic, ifeval)."
            )
    local = [s for t, s in zip(tasks, specs) if (cfgs[t] or {}).get("custom_dataset")]
    if local:
        tm.load(local)
    if any(prompts.scored_by_ifeval(tm, t) for t in tasks):
        seeded.check_scorer()  # every checker on a fixed answer: a scorer that cannot run fails now


@dataclass
class SuiteResult:
    """What a suite run hands to the record, by part name (``icl``, ``if``).

    ``parts``: each part's record entry (headline metric, per-task metrics, few-shot settings, sample counts,
    groups, judge); ``aggregates``: its summary numbers (``aggregate.aggregate_part``: macro mean, group means,
    seeded bootstrap CI), the one source of ``summary`` and ``ci``; ``samples``: per-sample file by task;
    ``seconds``: wall time per part (the record's ``times.eval_s``); ``flags``: degenerate outcomes.
    """

    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    aggregates: dict[str, aggregate.PartAggregate] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # degenerate but finite outcomes (guards.check_part)

    @property
    def summary(self) -> dict[str, float]:
        """``{part: macro mean}``: the unweighted mean over the part's tasks of each task's mean headline metric."""
        return {p: a.mean for p, a in self.aggregates.items()}

    @property
    def ci(self) -> dict[str, dict[str, Any]]:
        """``{part: CI fields as the record writes them}``; ``{}`` for a part without one (``bootstrap=0``)."""
        return {p: dataclasses.asdict(a.ci) if a.ci else {} for p, a in self.aggregates.items()}

    def metrics(self) -> dict[str, PartMetrics]:
        """The parts' entries as the record's typed ``metrics``."""
        return {p: PartMetrics.from_json(m) for p, m in self.parts.items()}


def run(
    lm: Any, suite: SuiteSpec | Mapping[str, Any], samples_dir: Path, seed: int, bootstrap: int = 1000
) -> SuiteResult:
    """Evaluate every part; returns per-task metrics, the summary and where per-sample outputs went."""
    spec = suite_spec(suite)
    samples_dir.mkdir(parents=True, exist_ok=True)
    out = SuiteResult()
    tm = task_manager(spec.include_defaults, prompts.include_paths(spec))
    for pname, part in spec.parts.items():
        t0 = time.perf_counter()
        res = _simple_evaluate(lm, tm, part, seed)
        _add_part(out, pname, part, res, samples_dir, seed, bootstrap)
        out.seconds[pname] = time.perf_counter() - t0
    return out


def _simple_evaluate(lm: Any, tm: Any, part: PartSpec, seed: int) -> dict[str, Any]:
    """lm-eval's own run of one part (every seed it takes set to ``seed``), per-sample outputs logged."""
    import lm_eval

    return lm_eval.simple_evaluate(
        model=lm,
        tasks=prompts.task_specs(tm, part),
        num_fewshot=part.num_fewshot,
        limit=part.limit,
        apply_chat_template=part.chat_template,
        log_samples=True,
        task_manager=tm,
        use_cache=None,
        cache_requests=False,
        gen_kwargs=part.gen_kwargs or None,
        bootstrap_iters=0,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        verbosity="WARNING",
    )


def _add_part(
    out: SuiteResult, pname: str, part: PartSpec, res: dict[str, Any], samples_dir: Path, seed: int, bootstrap: int
) -> None:
    """Check, judge, save and aggregate one part's lm-eval results into ``out`` (``bootstrap``: CI resamples)."""
    # NaN log-likelihoods fail the point (no record); all-empty generations are a result, flagged (guards.py)
    flagged = guards.check_part(
        pname,
        {t: res["configs"][t].get("output_type", "") for t in part.tasks},
        {t: res["samples"][t] for t in part.tasks},
    )
    for task, flag in flagged.items():
        log.warning("part %r, task %s: %s (recorded with this flag)", pname, task, flag)
        out.flags += [flag] if flag not in out.flags else []
    # generation went through lm-eval; a judge scores the answers it saved (adding to, not editing, its output)
    judged = judges.score(res["samples"], part, seed) if part.judge else None
    per_task, per_sample = _save_tasks(out, part, res, judged, samples_dir)
    entry: dict[str, Any] = {
        "metric": part.metric,
        "tasks": per_task,
        "chat_template": part.chat_template,
        "num_fewshot": {t: res["configs"][t].get("num_fewshot") for t in part.tasks},
        "n": {t: len(v) for t, v in per_sample.items()},
        "fewshot_seed": seed,
        "limit": part.limit,
    }
    groups, dropped = part_groups(part)
    agg = aggregate.aggregate_part(per_sample, groups, aggregate.Bootstrap(n_resamples=bootstrap, seed=seed))
    if agg.groups:  # e.g. the macro average of the MC tasks and of the FMC tasks separately
        entry["groups"] = agg.groups
    if dropped:  # none of the chosen tasks is in these groups (see ``part_groups``)
        entry["groups_dropped"] = dropped
    if flagged:
        entry["flags"] = flagged
    if judged is not None:
        entry["judge"] = judged.info
    out.parts[pname], out.aggregates[pname] = entry, agg


def _save_tasks(
    out: SuiteResult, part: PartSpec, res: dict[str, Any], judged: Any, samples_dir: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, list[float]]]:
    """Write each task's per-sample file (judge scores merged in); ({task: metrics}, {task: headline scores})."""
    metric = part.metric
    per_task: dict[str, dict[str, Any]] = {}
    per_sample: dict[str, list[float]] = {}
    for task in part.tasks:
        rows = sorted(res["samples"][task], key=lambda s: s["doc_id"])
        per_task[task] = {
            k.split(",")[0]: v
            for k, v in res["results"][task].items()
            if isinstance(v, (int, float)) and not k.endswith("_stderr,none")
        }
        if judged is not None:
            rows = [{**r, **judged.rows[task][r["doc_id"]]} for r in rows]
            per_task[task].update(judged.metrics[task])
        path = samples_dir / f"{task}.jsonl"
        _write_samples(path, rows)
        out.samples[task] = str(path)
        per_sample[task] = [float(s[metric]) for s in rows]
    return per_task, per_sample


def _write_samples(path: Path, samples: list[dict]) -> None:
    """Per-sample prompts, responses and scores: what a reviewer needs to re-score the point."""
    from lm_eval.utils import handle_non_serializable

    tmp = path.with_suffix(".jsonl.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for s in sorted(samples, key=lambda s: s["doc_id"]):
                f.write(json.dumps(s, default=handle_non_serializable, ensure_ascii=False) + "\n")
        tmp.replace(path)
    except BaseException:  # full disk, Ctrl-C: no half-written temp file stays behind
        tmp.unlink(missing_ok=True)
        raise
