"""Is sweep point A better than point B? A paired bootstrap over the items both records scored.

Why a helper independent of ``mergesweep.report.report``: reviewers ask about two specific points (say lam=0.5 vs
lam=0.75 on ICL) and the answer must come from the per-sample files, item by item, not from the headline
means. Records store ``samples: {task: path relative to the sweep folder}`` and ``metrics: {part: {metric,
tasks}}``; each per-sample JSONL row has ``doc_id``, ``doc_hash`` and the metric as a key.

    python -m mergesweep.evals.compare results/s/records/A.json results/s/records/B.json --part icl
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import stats
from .data import read_jsonl


def load_record(path: str | Path) -> tuple[dict[str, Any], Path]:
    """(record, sweep folder): records live at ``<sweep>/records/<point>.json``."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")), path.resolve().parent.parent


def per_sample(record: Mapping[str, Any], root: Path, part: str) -> dict[str, dict[int, tuple[float, Any]]]:
    """``{task: {doc_id: (score, doc_hash)}}`` for one part of one record."""
    if part not in (record.get("metrics") or {}):
        raise ValueError(
            f"record {record.get('point_id')!r} has no part {part!r} (parts: {sorted(record.get('metrics') or {})})"
        )
    metric = record["metrics"][part]["metric"]
    out: dict[str, dict[int, tuple[float, Any]]] = {}
    for task in record["metrics"][part]["tasks"]:
        rows = read_jsonl(root / record["samples"][task], ("doc_id", metric))
        out[task] = {int(r["doc_id"]): (float(r[metric]), r.get("doc_hash")) for r in rows}
    return out


def compare(
    record_a: str | Path, record_b: str | Path, part: str, n_resamples: int = 10000, seed: int = 0
) -> dict[str, Any]:
    """Paired bootstrap of A minus B on ``part``'s headline metric (macro over tasks, items paired by doc_id).

    Returns ``stats.paired_bootstrap``'s dict (``diff``, one-sided ``p_value`` for A > B, the 95% CI of the
    difference as ``low``/``high``, ...) plus the metric, per-task means and the point ids. Raises ValueError when
    the records did not score the same items.
    """
    (ra, root_a), (rb, root_b) = load_record(record_a), load_record(record_b)
    sa, sb = per_sample(ra, root_a, part), per_sample(rb, root_b, part)
    ma, mb = ra["metrics"][part]["metric"], rb["metrics"][part]["metric"]
    if ma != mb:
        raise ValueError(f"part {part!r}: headline metrics differ ({ma!r} vs {mb!r})")
    if sorted(sa) != sorted(sb):
        raise ValueError(f"part {part!r}: tasks differ: {sorted(sa)} vs {sorted(sb)}")
    a, b = {}, {}
    for task in sorted(sa):
        if sorted(sa[task]) != sorted(sb[task]):
            raise ValueError(f"task {task!r}: the two records scored different doc_ids (different `limit`?)")
        ids = sorted(sa[task])
        changed = [i for i in ids if sa[task][i][1] and sb[task][i][1] and sa[task][i][1] != sb[task][i][1]]
        if changed:
            raise ValueError(f"task {task!r}: doc_id {changed[0]} is a different document in the two records")
        a[task] = [sa[task][i][0] for i in ids]
        b[task] = [sb[task][i][0] for i in ids]
    res = stats.paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed)
    return {
        **res,
        "part": part,
        "metric": ma,
        "a": ra.get("point_id"),
        "b": rb.get("point_id"),
        "tasks": {t: {"a": sum(a[t]) / len(a[t]), "b": sum(b[t]) / len(b[t]), "n": len(a[t])} for t in a},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("record_a", type=Path)
    ap.add_argument("record_b", type=Path)
    ap.add_argument("--part", default="icl", help="icl or if")
    ap.add_argument("--resamples", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    res = compare(args.record_a, args.record_b, args.part, n_resamples=args.resamples, seed=args.seed)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
