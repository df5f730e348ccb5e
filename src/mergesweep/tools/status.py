"""``mergesweep status SWEEP_DIR``: which points a sweep asked for, and which are done, failed or missing.

Expected points come from the multiruns' own records of what they were asked: each ``multirun.yaml`` Hydra
saves under the sweep folder holds the command-line overrides (and sweeper params); they are expanded the way
Hydra's basic sweeper does (cartesian product of comma lists, ``range(...)``), each job's config is composed
from the config folder the multirun used, and its point id is computed exactly as the job computes it
(``points.identify``: exact strength, checkpoint contents). Single runs (``.hydra/overrides.yaml`` of ``run-*``)
count too. A point is *done* when a complete record exists, *failed* when only a failure entry exists (its
reason is printed), *missing* otherwise. Exit status: 0 when every expected point is done, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..app import points
from ..paths import apply_env, conf_dir
from ..store.records import RecordStore


@dataclass
class Expected:
    """One job a multirun (or run) asked for."""

    overrides: list[str]
    source: Path  # the multirun.yaml / overrides.yaml it came from
    point_id: str | None = None
    error: str | None = None  # why its point id could not be computed


@dataclass
class Status:
    expected: list[Expected]
    done: list[Expected] = field(default_factory=list)
    failed: list[tuple[Expected, str]] = field(default_factory=list)
    missing: list[Expected] = field(default_factory=list)
    unknown: list[Expected] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flags: dict[str, list[str]] = field(default_factory=dict)  # point id -> its record's flags (degenerate outputs)


def _expand(overrides: list[str]) -> list[list[str]]:
    """Every job's override list, as Hydra's basic sweeper builds them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def _config_dir(hydra_cfg: DictConfig) -> tuple[str | None, str, list[str]]:
    """(the main config folder, config name, the user's ``hydra.searchpath``) a run used, from its saved Hydra
    config (a job may pick an option of a group that only the search path holds, e.g. ``model=my_model``)."""
    sources = hydra_cfg.runtime.get("config_sources") or []
    main = [s.path for s in sources if s.get("provider") == "main" and s.get("schema") == "file"]
    searchpath = [str(p) for p in hydra_cfg.get("searchpath") or []]
    return (main[0] if main else None), str(hydra_cfg.job.get("config_name") or "config"), searchpath


def _saved_jobs(sweep_dir: Path) -> Iterator[tuple[Path, list[str], str | None, str, list[str]]]:
    """(source file, job overrides, config folder, config name, search path) for every job any multirun or run
    asked for."""
    for my in sorted(sweep_dir.rglob("multirun.yaml")):
        cfg = OmegaConf.load(my)
        task = list(cfg.hydra.overrides.get("task") or [])
        params = cfg.hydra.sweeper.get("params") or {}
        conf, name, searchpath = _config_dir(cfg.hydra)
        for job in _expand([f"{k}={v}" for k, v in params.items()] + task):
            yield my, job, conf, name, searchpath
    for ov in sorted(sweep_dir.rglob(".hydra/overrides.yaml")):
        if (ov.parent.parent.parent / "multirun.yaml").is_file():
            continue  # a job of a multirun above: already expanded from its multirun.yaml
        hydra_yaml = ov.parent / "hydra.yaml"
        conf, name, searchpath = (
            _config_dir(OmegaConf.load(hydra_yaml).hydra) if hydra_yaml.is_file() else (None, "config", [])
        )
        yield ov, [str(x) for x in OmegaConf.load(ov)], conf, name, searchpath


def _identify(job: list[str], conf: str | None, name: str, searchpath: Sequence[str] = ()) -> str:
    """The point id this job computes (composing its config the way the job did)."""
    from hydra import compose, initialize_config_dir

    plain = [o for o in job if not o.lstrip("+~").startswith("hydra")]
    if searchpath:  # the run's own search path (quoted: a folder may hold Hydra's special characters)
        plain.append("hydra.searchpath=[" + ",".join(f"'{p}'" for p in searchpath) + "]")
    with initialize_config_dir(config_dir=str(conf or conf_dir()), version_base="1.3"):
        cfg = compose(config_name=name, overrides=plain)
    return points.identify(cfg)[0]


def sweep_status(sweep_dir: Path) -> Status:
    """Expected points of every multirun/run under ``sweep_dir`` against its records and failure entries."""
    store = RecordStore(sweep_dir)
    st = Status(expected=[])
    seen: set[tuple[str, ...]] = set()
    for src, job, conf, name, searchpath in _saved_jobs(sweep_dir):
        key = tuple(sorted(job))
        if key in seen:
            continue
        seen.add(key)
        e = Expected(overrides=job, source=src)
        try:
            e.point_id = _identify(job, conf, name, searchpath)
        except Exception as exc:  # a job whose config no longer composes is reported, not fatal
            e.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        st.expected.append(e)
    ids = {e.point_id for e in st.expected}
    for e in st.expected:
        if e.point_id is None:
            st.unknown.append(e)
        elif store.done(e.point_id):
            st.done.append(e)
        elif (f := store.failure(e.point_id)) is not None:
            st.failed.append((e, f.reason))
        else:
            st.missing.append(e)
    recs, bad = store.scan()
    st.flags = {r.point_id: r.flags for r in recs if r.flags}
    extra = [r.point_id for r in recs if r.point_id not in ids]
    if extra:
        st.notes.append(f"{len(extra)} record(s) no saved multirun asked for: {', '.join(extra[:5])}")
    st.notes += [f"unreadable record {p}: {why}" for p, why in bad]
    return st


def _job_text(e: Expected) -> str:
    return " ".join(o for o in e.overrides if not o.startswith(("results_dir=", "hydra."))) or "(defaults)"


def _flag_text(st: Status, e: Expected) -> str:
    """`` flagged: all_generations_empty`` for a done point whose outputs were degenerate (a result, shown)."""
    flags = st.flags.get(str(e.point_id))
    return f"  flagged: {', '.join(flags)}" if flags else ""


def format_status(sweep_dir: Path, st: Status) -> str:
    n_flagged = sum(1 for e in st.done if st.flags.get(str(e.point_id)))
    lines = [
        f"sweep {sweep_dir}: expected {len(st.expected)}, done {len(st.done)}, failed {len(st.failed)}, "
        f"missing {len(st.missing)}"
        + (f", unknown {len(st.unknown)}" if st.unknown else "")
        + (f" ({n_flagged} done point(s) flagged: degenerate outputs)" if n_flagged else "")
    ]
    lines += [f"  done     {_job_text(e)}  [{e.point_id}]{_flag_text(st, e)}" for e in st.done]
    lines += [f"  FAILED   {_job_text(e)}  [{e.point_id}]: {why}" for e, why in st.failed]
    lines += [f"  missing  {_job_text(e)}  [{e.point_id}]" for e in st.missing]
    lines += [f"  unknown  {_job_text(e)}: {e.error}" for e in st.unknown]
    lines += [f"  note: {n}" for n in st.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="mergesweep status",
        description="Expected points of a sweep (from its saved multirun overrides) "
        "vs done / failed / missing. Exit 0 only when all are done.",
    )
    ap.add_argument("sweep_dirs", nargs="+", type=Path, help="e.g. results/default")
    args = ap.parse_args(argv)

    apply_env(offline=True)  # composing jobs and hashing checkpoints must not reach a hub
    complete = True
    for d in args.sweep_dirs:
        if not d.is_dir():
            print(f"mergesweep status: error: no such sweep folder: {d}", file=sys.stderr)
            raise SystemExit(1)
        st = sweep_status(d)
        if not st.expected:
            print(
                f"sweep {d}: no saved multirun or run config under it (expected points unknown); "
                f"{len(RecordStore(d).scan()[0])} record(s), {len(RecordStore(d).failures())} failure entr(ies)"
            )
            complete = False
            continue
        print(format_status(d, st))
        complete = complete and len(st.done) == len(st.expected)
    raise SystemExit(0 if complete else 1)


if __name__ == "__main__":
    main()
