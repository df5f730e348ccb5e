"""``mergesweep verify RECORD...``: re-check a record's numbers in one command.

* fast (default): check each samples file against its recorded sha256 (schema 3; an older record says it
  cannot), re-score the saved per-sample outputs with lm-eval's own ``process_results`` and aggregation, under
  the recorded settings (IF checker seed ``seeds.if_checkers``, bootstrap seed and size), and compare every
  metric, summary and CI bound *exactly*. Needs no model, seconds per record.
* ``--full``: check the checkpoints' sha256s against the record (a mismatch fails, naming the files; nothing
  is re-run then), rebuild the point from the recorded config (merge, engine, suite) into a scratch folder,
  re-generate and re-score, and compare side by side: log-likelihood metrics must match exactly; metrics of
  generation tasks may differ by at most ``GEN_TOL_ITEMS`` items' worth per task (``2/n``; a summary or CI
  bound: the mean of its tasks' ``2/n``), because greedy generation on CPU is batch-dependent at float
  precision (README, Known limits).

``--model-root DIR`` remaps checkpoint paths of a record copied from another machine: a recorded local path is
looked up under DIR by its trailing components (``/old/data/toy_pair/base`` -> ``DIR/toy_pair/base`` or
``DIR/base``); ``--model-root OLD=NEW`` replaces a path prefix. Exit status: non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..app.runner import run_point
from ..app.spec import run_spec
from ..evals import aggregate, seeded
from ..evals import suite as suites
from ..evals.spec import SuiteSpec
from ..paths import apply_env
from ..store.records import PartMetrics, Record, RecordError, RecordStore, read_record, sha256_file
from ..weights.checkpoints import dir_hashes, resolve

GEN_TOL_ITEMS = 2
ROLE_KEYS = ("base", "instruct", "target", "adapter")


@dataclass
class Check:
    """One compared number: where, recorded value, recomputed value, allowed |difference|."""

    name: str
    recorded: Any
    got: Any
    tol: float = 0.0

    @property
    def ok(self) -> bool:
        if isinstance(self.recorded, (int, float)) and isinstance(self.got, (int, float)):
            if math.isnan(self.recorded) or math.isnan(self.got):
                return math.isnan(self.recorded) and math.isnan(self.got)
            return self.recorded == self.got if self.tol == 0 else abs(self.recorded - self.got) <= self.tol + 1e-12
        return self.recorded == self.got


# --- fast mode: re-score saved samples --------------------------------------------------------------------
@cache
def _task(name: str, include_defaults: bool) -> Any:
    """lm-eval's task object (built once per process: its docs are not needed, its scorer is)."""
    return suites.task_manager(include_defaults).load([name])["tasks"][name]


def rescore(rec: Record, store: RecordStore) -> tuple[list[Check], dict[str, str], list[str]]:
    """(checks, {task: output type}, notes): every metric of the record recomputed from its saved samples."""
    include_defaults = bool((rec.config.get("suite") or {}).get("include_defaults", SuiteSpec.include_defaults))
    checks: list[Check] = []
    kinds: dict[str, str] = {}
    notes = _schema_notes(rec)
    with seeded.using_seed(rec.seeds.get("if_checkers")):
        for part, pm in rec.metrics.items():
            if "judge" in pm.extra:
                notes.append(f"part {part}: judged; re-scoring needs the judge (use --full)")
                continue
            per_sample: dict[str, list[float]] = {}
            for tname, recorded in pm.tasks.items():
                task = _task(tname, include_defaults)
                kinds[tname] = task.config.output_type
                task_checks, per_sample[tname] = _rescore_task(rec, store, part, tname, recorded, task)
                checks += task_checks
            checks += _summary_checks(rec, part, per_sample)
    return checks, kinds, notes


def _schema_notes(rec: Record) -> list[str]:
    """What an older record cannot have, said up front (its checks are then expected to differ or be missing)."""
    notes = []
    if "if_checkers" not in rec.seeds:
        notes.append(f"schema-{rec.schema} record: IF checkers ran unseeded, exact IF re-scores are not expected")
    if rec.schema < 3:
        notes.append(
            f"schema-{rec.schema} record: no sha256 of its samples files, so an edit that keeps the scores "
            "(a rewritten response) cannot be detected; --full re-generates"
        )
    return notes


def _rescore_task(
    rec: Record, store: RecordStore, part: str, tname: str, recorded: dict[str, Any], task: Any
) -> tuple[list[Check], list[float]]:
    """(checks of one task, its re-scored per-sample headline metric): lm-eval's own scorer and aggregation."""
    checks = []
    metric = rec.metrics[part].metric
    if tname in rec.samples_sha256:  # schema 3: the file must be the one the run wrote
        got_hash = sha256_file(store.samples_file(rec, tname))
        checks.append(Check(f"{part}/{tname}/samples file sha256", rec.samples_sha256[tname], got_hash))
    rows = store.read_samples(rec, tname)
    scored = [task.process_results(s["doc"], s["filtered_resps"]) for s in rows]
    agg = task.aggregation()
    for name, value in recorded.items():
        if name in agg:
            checks.append(Check(f"{part}/{tname}/{name}", value, agg[name]([d[name] for d in scored])))
    flips = sum(s.get(metric) != d[metric] for s, d in zip(rows, scored))
    checks.append(Check(f"{part}/{tname}/samples differing in {metric}", 0, flips))
    return checks, [float(d[metric]) for d in scored]


def _summary_checks(rec: Record, part: str, per_sample: dict[str, list[float]]) -> list[Check]:
    """The part's summary, groups and CI recomputed by the suite's own rule (``evals.aggregate``), under the
    recorded group patterns and bootstrap settings, against what the record says."""
    recorded_groups = rec.metrics[part].extra.get("groups") or {}
    patterns = (((rec.config.get("suite") or {}).get("parts") or {}).get(part) or {}).get("groups") or {}
    ci = rec.ci.get(part)
    got = aggregate.aggregate_part(
        per_sample, {g: patterns.get(g, "\0") for g in recorded_groups}, aggregate.Bootstrap.of(ci)
    )
    out = [Check(f"summary.{part}", rec.summary.get(part), got.mean)]
    out += [Check(f"metrics.{part}.groups.{g}", v, got.groups[g]) for g, v in recorded_groups.items()]
    if ci is not None:
        low, high = (got.ci.low, got.ci.high) if got.ci else (None, None)
        out += [Check(f"ci.{part}.low", ci.low, low), Check(f"ci.{part}.high", ci.high, high)]
    return out


# --- full mode: hashes, rebuild, re-run ----------------------------------------------------------------------
def remap(path: str, roots: list[str]) -> str:
    """A recorded checkpoint path as found on this machine (see module docstring); unchanged if not found."""
    for root in roots:
        if "=" in root:
            old, new = root.split("=", 1)
            if path.startswith(old) and Path(new + path[len(old) :]).exists():
                return new + path[len(old) :]
            continue
        parts = Path(path).parts[1:] if Path(path).is_absolute() else Path(path).parts
        for k in range(len(parts), 0, -1):
            cand = Path(root) / Path(*parts[-k:])
            if cand.is_dir():
                return str(cand)
    return path


def remapped_model(model: dict, roots: list[str]) -> dict:
    model = dict(model)
    for k in ROLE_KEYS:
        if isinstance(model.get(k), str):
            model[k] = remap(model[k], roots)
    if isinstance(model.get("finetuned"), list):
        model["finetuned"] = [remap(str(p), roots) for p in model["finetuned"]]
    return model


def _role_path(model: dict, role: str) -> str | None:
    if role.startswith("finetuned["):
        lst = model.get("finetuned") or []
        i = int(role[len("finetuned[") : -1])
        return str(lst[i]) if i < len(lst) else None
    return model.get(role)


def hash_problems(rec: Record, model: dict) -> list[str]:
    """Every checkpoint file whose sha256 differs from the record (or that is missing), named."""
    problems = []
    for role, recorded in (rec.provenance.get("checkpoints") or {}).items():
        path = _role_path(model, role)
        try:
            found = dir_hashes(resolve(str(path), model.get("revision")))
        except Exception as e:  # missing folder, hub id offline...
            problems.append(f"{role}: checkpoint {path} not found ({type(e).__name__}: {e})")
            continue
        for f, h in sorted(recorded.items()):
            if f not in found:
                problems.append(f"{role}: {Path(str(path)) / f} is missing")
            elif found[f] != h:
                problems.append(f"{role}: {Path(str(path)) / f} has sha256 {found[f][:12]}..., record says {h[:12]}...")
        problems += [f"{role}: {Path(str(path)) / f} is not in the record" for f in sorted(set(found) - set(recorded))]
    return problems


def rerun(rec: Record, model: dict, scratch: Path) -> Record:
    """The point rebuilt from the recorded config in ``scratch`` (no tracking), as a new record."""
    from omegaconf import OmegaConf

    cfg = dict(rec.config)
    cfg.update(model=model, results_dir=str(scratch), force=True, tracking={"enabled": False})
    cfg["sweep"] = {**(cfg.get("sweep") or {}), "name": "verify"}
    apply_env(run_spec(cfg).offline)
    new = run_point(OmegaConf.create(cfg))
    if new is None:  # only when another process holds the point's lock, which a fresh scratch folder rules out
        raise RecordError(f"the re-run of {rec.point_id} wrote no record")
    return new


def compare_runs(rec: Record, new: Record, kinds: dict[str, str]) -> list[Check]:
    """Side by side: exact for log-likelihood tasks, ``GEN_TOL_ITEMS/n`` per generation task."""

    def tol(tasks: list[str], pm: PartMetrics) -> float:
        gen = [t for t in tasks if kinds.get(t) == "generate_until"]
        return sum(GEN_TOL_ITEMS / max(1, pm.n.get(t, 1)) for t in gen) / max(1, len(tasks)) if gen else 0.0

    checks = []
    for part, pm in rec.metrics.items():
        other = new.metrics.get(part)
        for t, metrics in pm.tasks.items():
            got = (other.tasks.get(t) if other else None) or {}
            for m, v in metrics.items():
                checks.append(Check(f"{part}/{t}/{m}", v, got.get(m), tol([t], pm) if m != "sample_len" else 0.0))
        ptol = tol(list(pm.tasks), pm)
        checks.append(Check(f"summary.{part}", rec.summary.get(part), new.summary.get(part), ptol))
        if part in rec.ci and part in new.ci:
            checks += [
                Check(f"ci.{part}.{b}", getattr(rec.ci[part], b), getattr(new.ci[part], b), ptol)
                for b in ("low", "high")
            ]
    return checks


# --- CLI -----------------------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, str) and len(v) > 12:  # sha256s: the first 12 hex digits identify the file in a table
        return v[:11] + "…"
    return f"{v:.6f}" if isinstance(v, float) else str(v)


def table(checks: list[Check]) -> str:
    w = max([len(c.name) for c in checks] + [6])
    lines = [f"  {'metric':<{w}}  {'recorded':>12}  {'now':>12}  check"]
    for c in checks:
        verdict = ("ok" if c.tol == 0 else f"ok (tol {c.tol:.4f})") if c.ok else "MISMATCH"
        lines.append(f"  {c.name:<{w}}  {_fmt(c.recorded):>12}  {_fmt(c.got):>12}  {verdict}")
    return "\n".join(lines)


def verify_record(path: Path, full: bool, roots: list[str], scratch: Path | None) -> bool:
    """Print the checks for one record; True when all pass."""
    rec = read_record(path)
    checks, kinds, notes = rescore(rec, RecordStore.holding(path))
    print(
        f"{path}: {'fast' if not full else 'full'} check of {rec.point_id} (IF checker seed "
        f"{rec.seeds.get('if_checkers')}, bootstrap seed {rec.seeds.get('bootstrap')})"
    )
    for n in notes:
        print(f"  note: {n}")
    print("  re-scored saved samples (exact):\n" + table(checks))
    ok = all(c.ok for c in checks)
    if full:
        model = remapped_model(rec.config.get("model") or {}, roots)
        problems = hash_problems(rec, model)
        if problems:
            print("  checkpoint hashes differ from the record; not re-running:")
            print("\n".join(f"    {p}" for p in problems))
            return False
        print("  checkpoint hashes: all match")
        with tempfile.TemporaryDirectory(prefix="mergesweep-verify-", dir=scratch) as tmp:
            new = rerun(rec, model, Path(tmp))
        runs = compare_runs(rec, new, kinds)
        print(
            f"  re-generated and re-scored (log-likelihood metrics exact; generation metrics within "
            f"{GEN_TOL_ITEMS} items per task):\n" + table(runs)
        )
        ok = ok and all(c.ok for c in runs)
    print(f"  {'PASS' if ok else 'FAIL'}")
    return ok


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="mergesweep verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("records", nargs="+", type=Path, help="record files (results/<sweep>/records/*.json)")
    ap.add_argument("--full", action="store_true", help="check hashes, rebuild the point, re-generate, re-score")
    ap.add_argument(
        "--model-root",
        action="append",
        default=[],
        metavar="DIR|OLD=NEW",
        help="where checkpoints of a record copied from elsewhere live (repeatable)",
    )
    ap.add_argument("--scratch", type=Path, default=None, help="folder for the re-run's scratch results")
    args = ap.parse_args(argv)

    apply_env(offline=True)  # before lm-eval's IFEval helper is imported; hub inputs come from the local cache
    for name in ("lm_eval", "lm-eval"):  # per-task chatter from lm-eval would drown the table
        logging.getLogger(name).setLevel(logging.ERROR)
    failed = 0
    for p in args.records:
        try:
            failed += not verify_record(p, args.full, args.model_root, args.scratch)
        except (RecordError, FileNotFoundError, KeyError) as e:
            print(f"mergesweep verify: error: {p}: {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
    print(f"verify: {len(args.records) - failed} of {len(args.records)} record(s) pass")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
