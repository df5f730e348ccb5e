"""Write a folder somewhere safe, then swap it into place in one rename: a failure never damages what was there.

Why: an export that dies halfway (bad knob, full disk, Ctrl-C) must leave the previous export, the source
checkpoints and the user's folders exactly as they were. So the new folder is built as a hidden sibling of
its final path (same filesystem, so the rename is atomic), and only a complete one replaces the old.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError


def check_target(out: Path, sources: Iterable[Path], marker: str) -> None:
    """Refuse an ``out`` that is, holds or lies inside a source, and an existing folder that is not ours.

    ``marker`` is the file every folder this tool writes has (an existing folder without it is the user's
    and is never replaced).
    """
    target = Path(os.path.abspath(out)).resolve()
    for src in sources:
        s = Path(src).resolve()
        if target == s or s in target.parents or target in s.parents:
            rel = "is" if target == s else ("lies inside" if s in target.parents else "holds")
            raise ConfigError(f"--out {out} {rel} the source checkpoint {s}; choose a folder outside every source")
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise ConfigError(
            f"--out {out} is a non-empty folder that is not an earlier export (no {marker}); "
            "choose a new or empty folder"
        )


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out``, on any error it is removed
    (and so are parent folders this call created)."""
    out = Path(os.path.abspath(out))
    made = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        yield tmp
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in made:  # innermost first
            try:
                p.rmdir()
            except OSError:
                break
        raise


def _swap(tmp: Path, out: Path) -> None:
    """``tmp`` becomes ``out``; an existing ``out`` is moved aside first and deleted only after the swap."""
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; an export is an ordinary folder
    if not out.exists():
        tmp.rename(out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
    old.rmdir()
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)
