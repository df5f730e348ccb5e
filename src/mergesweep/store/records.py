"""One record per sweep point on disk: atomic writes, failure entries, the resume rule and the folder layout.

A record is the only thing reports, ``verify`` and reviewers read. It is written once, after the point
finished, to a temporary file that is fsync'ed and renamed into place: a killed job leaves either a whole
record or none, and a rerun of the sweep skips points whose record exists (same point id = same config, same
exact strength, same checkpoint contents; see ``identity.py``).

A point that ran but cannot be trusted (non-finite weights, NaN log-likelihoods) leaves a *failure entry*
under ``failures/`` instead: it names the reason, is never read as a result, and is removed when the point
later succeeds. ``mergesweep status`` reads both.

The schema itself (what each field means, which older schemas are read) is in ``schema.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .identity import point_id
from .schema import CI, SCHEMA, Failure, PartMetrics, Record, RecordError, Summary, Timings

log = logging.getLogger(__name__)
__all__ = [
    "SCHEMA",
    "CI",
    "Failure",
    "PartMetrics",
    "Record",
    "RecordError",
    "RecordStore",
    "Summary",
    "Timings",
    "point_id",
    "read_record",
    "sha256_file",
]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (samples files: KBs to a few MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_record(path: Path) -> Record:
    """One record file, or RecordError naming what is wrong (unreadable bytes, bad JSON, wrong schema)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"unreadable ({type(e).__name__}: {e})") from None
    return Record.from_json(data)


def _atomic_json(path: Path, data: dict) -> Path:
    """Write a temp file in the same folder, fsync, rename over the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=False, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


class RecordStore:
    """``<sweep>/records/<point>.json``, ``samples/<point>/`` per-sample outputs, ``failures/<point>.json``.

    The only code that knows this layout: everything else asks the store for paths, records and samples."""

    def __init__(self, sweep_dir: Path) -> None:
        self.root = Path(sweep_dir)
        self.records = self.root / "records"
        self.samples_root = self.root / "samples"
        self.failures_dir = self.root / "failures"

    @classmethod
    def holding(cls, record_path: Path) -> RecordStore:
        """The store (sweep folder) a record file lies in, wherever the folder was copied to."""
        return cls(Path(record_path).resolve().parent.parent)

    def path(self, pid: str) -> Path:
        return self.records / f"{pid}.json"

    def samples_dir(self, pid: str) -> Path:
        return self.samples_root / pid

    def relative(self, path: Path | str) -> str:
        """``path`` relative to the sweep folder, as a record stores it (the folder may move; records stay valid)."""
        return os.path.relpath(path, self.root)

    def samples_file(self, rec: Record, task: str) -> Path:
        """Where the record's per-sample file of ``task`` is in this store."""
        return self.root / rec.samples[task]

    def read_samples(self, rec: Record, task: str) -> list[dict[str, Any]]:
        """The record's per-sample rows of ``task``, in doc_id order (what re-scoring reads)."""
        with open(self.samples_file(rec, task), encoding="utf-8") as f:
            return sorted((json.loads(line) for line in f if line.strip()), key=lambda s: s["doc_id"])

    def read(self, pid: str) -> Record:
        """The point's record; RecordError (naming what is wrong) when it is missing or unreadable."""
        return read_record(self.path(pid))

    def load(self, pid: str) -> Record | None:
        """The point's complete record, or None (none, an unreadable file, or another point's record)."""
        try:
            rec = self.read(pid)
        except RecordError:
            return None
        return rec if rec.point_id == pid else None

    def done(self, pid: str) -> bool:
        """A complete, readable record of this point exists (anything else, garbage included, does not count)."""
        return self.load(pid) is not None

    def set_aside_corrupt(self, pid: str) -> Path | None:
        """Move an unreadable record of ``pid`` to ``<pid>.json.corrupt`` (kept for inspection) and say so in one
        log line; returns where it went (None: no file, or a readable one). Why: a rerun used to replace it
        silently, and whatever made it corrupt (a disk, a tool, a hand edit) went unnoticed."""
        path = self.path(pid)
        try:
            read_record(path)
            return None
        except RecordError as e:
            if not path.exists():
                return None
            why = str(e)
        aside = path.with_name(path.name + ".corrupt")
        n = 1
        while aside.exists():
            n += 1
            aside = path.with_name(f"{path.name}.corrupt.{n}")
        os.replace(path, aside)
        log.warning("record %s is corrupt (%s); kept as %s, the point is recomputed", path, why, aside.name)
        return aside

    def write(self, record: Record | dict[str, Any]) -> Path:
        """Atomic write of a complete record (an unreadable file there is first set aside as ``*.corrupt``, a
        complete one replaced); clears the point's failure."""
        data = record.to_json() if isinstance(record, Record) else {"schema": SCHEMA, **record}
        data["complete"] = True
        self.set_aside_corrupt(data["point_id"])
        final = _atomic_json(self.path(data["point_id"]), data)
        self.failure_path(data["point_id"]).unlink(missing_ok=True)
        return final

    # --- failure entries (written by run_point's guards, launchers, bad-input checks) -----------------
    def failure_path(self, pid: str) -> Path:
        return self.failures_dir / f"{pid}.json"

    def write_failure(self, pid: str, reason: str, **details: Any) -> Path:
        """Leave a small failure entry for ``pid``: the reason (one line) and JSON-able details."""
        entry = {
            "schema": SCHEMA,
            "kind": "failure",
            "point_id": pid,
            "reason": str(reason),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "details": details,
        }
        return _atomic_json(self.failure_path(pid), entry)

    def failure(self, pid: str) -> Failure | None:
        """The point's failure entry, or None (no entry, or an unreadable one)."""
        try:
            d = json.loads(self.failure_path(pid).read_text(encoding="utf-8"))
            return Failure(
                point_id=d["point_id"], reason=d["reason"], time=d.get("time", ""), details=d.get("details") or {}
            )
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            return None

    def failures(self) -> list[Failure]:
        out = [self.failure(p.stem) for p in sorted(self.failures_dir.glob("*.json"))]
        return [f for f in out if f is not None]

    # --- reading everything -----------------------------------------------------------------------------
    def scan(self) -> tuple[list[Record], list[tuple[Path, str]]]:
        """(complete records, [(file, why it was skipped)]): nothing is dropped without a reason."""
        recs, bad = [], []
        for p in sorted(self.records.glob("*.json")):
            try:
                recs.append(read_record(p))
            except RecordError as e:
                bad.append((p, str(e)))
        return recs, bad

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Complete records as plain dicts (the on-disk JSON), unreadable files skipped with a warning."""
        recs, bad = self.scan()
        for p, why in bad:
            log.warning("skipping record %s: %s", p, why)
        for r in recs:
            yield r.to_json()
