"""One record per sweep point: schema, atomic writes, and the resume rule.

A record is the only thing reports and reviewers read. It is written once, after the point finished, to a
temporary file that is fsync'ed and renamed into place: a killed job leaves either a whole record or none,
and a rerun of the sweep skips points whose record exists (same point id = same config).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

SCHEMA = 1


def point_id(family: str, method: str, lam: float, config_subset: dict[str, Any]) -> str:
    """Readable and unique: ``<family>__<method>__lam<lam>__<hash of everything else that changes results>``."""
    digest = hashlib.sha256(json.dumps(config_subset, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{family}__{method}__lam{lam:g}__{digest}"


class RecordStore:
    """``<results>/<sweep>/records/<point>.json`` plus ``samples/<point>/`` per-sample outputs."""

    def __init__(self, sweep_dir: Path) -> None:
        self.root = Path(sweep_dir)
        self.records = self.root / "records"

    def path(self, pid: str) -> Path:
        return self.records / f"{pid}.json"

    def samples_dir(self, pid: str) -> Path:
        return self.root / "samples" / pid

    def done(self, pid: str) -> bool:
        """A complete, parseable record exists (a torn or foreign file does not count)."""
        try:
            rec = json.loads(self.path(pid).read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return rec.get("complete") is True and rec.get("point_id") == pid

    def write(self, record: dict[str, Any]) -> Path:
        """Atomic: write a temp file in the same folder, fsync, rename over the final name."""
        self.records.mkdir(parents=True, exist_ok=True)
        record = {"schema": SCHEMA, **record, "complete": True}
        final = self.path(record["point_id"])
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=False, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        return final

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for p in sorted(self.records.glob("*.json")):
            try:
                rec = json.loads(p.read_text())
            except json.JSONDecodeError:
                continue  # never produced by write(); ignore rather than crash a report
            if rec.get("complete") is True:
                yield rec
