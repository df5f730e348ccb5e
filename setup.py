"""Build hook: a wheel carries the checkout's ``conf/`` and ``data/`` as package data (all else: pyproject.toml).

A checkout keeps ``conf/`` and ``data/`` at its root, one copy in git, and an editable install reads them there
(``src/mergesweep/paths.py``). A built wheel gets a copy at ``mergesweep/conf`` and ``mergesweep/data``, which
``paths.conf_dir()`` / ``paths.data_dir()`` use when no checkout is around, so ``pip install .`` runs from any
folder. ``data/real/`` stays out: the real-model LoRAs (about 10 MB each) that ``mergesweep setup-real`` and the
miniatures read from a checkout (``MERGESWEEP_DATA=<checkout>/data``). The sdist carries the same (MANIFEST.in).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("conf", "data")
LEFT_OUT = {ROOT / "data": {"real"}}  # folder -> names not copied from it


def _ignore(folder: str, names: list[str]) -> set[str]:
    skip = LEFT_OUT.get(Path(folder).resolve(), set())
    return {n for n in names if n in skip or n == "__pycache__" or n.endswith((".pyc", ".pyo"))}


class BuildPy(build_py):
    """``build_py`` plus the copy of ``conf/`` and ``data/`` into the package (not for an editable install)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for name in SHIPPED:
            target = Path(self.build_lib) / "mergesweep" / name
            shutil.rmtree(target, ignore_errors=True)  # a stale build folder must not keep what is now left out
            shutil.copytree(ROOT / name, target, ignore=_ignore)


setup(cmdclass={"build_py": BuildPy})
