"""One point at a time per sweep folder: a lock file per point, so two sweeps into one folder never compute the
same point twice.

Why ``fcntl.flock`` on ``<sweep>/locks/<point>.lock`` rather than an ``O_EXCL`` marker: the kernel drops the lock
when its process dies (``kill -9``, a crashed node), so a stale lock of a dead process is taken over without any
guess about ages or PIDs; the file's text (PID, host, time) is only for people. A process that finds a point
locked skips it and comes back to it after the rest of its list (``defer`` / ``run_deferred``); by then the
other process has usually recorded it, and the point is skipped as done.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("mergesweep")


@dataclass
class PointLock:
    """A held lock; ``release`` removes the file and closes it (the kernel would release it on exit anyway)."""

    path: Path
    fd: int

    def release(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)


def lock_path(sweep_dir: Path, pid: str) -> Path:
    return Path(sweep_dir) / "locks" / f"{pid}.lock"


def acquire(sweep_dir: Path, pid: str, wait: bool = False) -> PointLock | None:
    """The point's lock, or None when another live process holds it (``wait``: block until it is free)."""
    path = lock_path(sweep_dir, pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:  # the holder we waited for may have removed the file: then lock the one now at the path
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    os.write(fd, json.dumps(owner).encode())
    return PointLock(path, fd)


def holder(sweep_dir: Path, pid: str) -> str:
    """Who holds the point's lock, as its file says (for the log line)."""
    try:
        d = json.loads(lock_path(sweep_dir, pid).read_text())
        return f"process {d.get('pid')} on {d.get('host')} since {d.get('since')}"
    except (OSError, ValueError):
        return "another process"


@dataclass
class Deferred:
    """Points this process skipped because another process was computing them."""

    points: list[Any] = field(default_factory=list)


DEFERRED = Deferred()


def defer(cfg: Any) -> None:
    DEFERRED.points.append(cfg)


def run_deferred(run_point: Callable[..., object]) -> list[str]:
    """Come back to every deferred point (in order): ``run_point`` waits for the other process's lock, then skips
    the point if it was recorded meanwhile, or computes it (the other process died or failed). Returns one line
    per point that failed here."""
    failed = []
    while DEFERRED.points:
        cfg = DEFERRED.points.pop(0)
        try:
            run_point(cfg, wait=True)
        except Exception as e:  # the point's own failure entry (if any) is written by run_point
            log.error("deferred point strength=%s failed: %s: %s", cfg.get("strength"), type(e).__name__, e)
            failed.append(f"strength={cfg.get('strength')}: {type(e).__name__}: {e}".splitlines()[0])
    return failed
