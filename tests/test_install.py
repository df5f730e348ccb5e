"""Installable like its anchors: configs and data are found through ``paths`` (override > checkout > package data),
users add config groups through Hydra's search path, and a built wheel runs a toy sweep from an empty folder.

The slow test builds the wheel from a copy of the checkout (``pip wheel --no-deps``, offline, with the running
interpreter's setuptools), installs it non-editable into a fresh venv that sees this environment's
dependencies through a plain ``.pth`` line (a plain line runs no ``.pth`` file of that folder, so this checkout's
editable install stays out), and checks that the installed copy, not the checkout, is what runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from mergesweep import paths

REPO = Path(__file__).resolve().parents[1]
MY_TOY = """\
# a user's own model, outside the package: copy of conf/model/toy.yaml under another name
family: my_toy
base: ${ms_data:}/toy_pair/base
instruct: ${ms_data:}/toy_pair/instruct
revision: null
dtype: float32
allow_pickle: false
"""
MY_STUDY = """\
# @package _global_
defaults:
  - override /model: my_toy
sweep:
  name: my_study
"""


def user_conf(root: Path) -> Path:
    """A user's config folder laid out like conf/: one model and one experiment preset."""
    (root / "model").mkdir(parents=True)
    (root / "experiment").mkdir()
    (root / "model" / "my_toy.yaml").write_text(MY_TOY)
    (root / "experiment" / "my_study.yaml").write_text(MY_STUDY)
    return root


def searchpath(folder: Path) -> str:
    return f"hydra.searchpath=[file://{folder}]"


@pytest.fixture
def no_overrides(monkeypatch):
    monkeypatch.delenv("MERGESWEEP_CONF", raising=False)
    monkeypatch.delenv("MERGESWEEP_DATA", raising=False)


def test_checkout_comes_after_the_env_overrides(no_overrides, monkeypatch, tmp_path):
    assert paths.checkout() == REPO
    assert paths.conf_dir() == REPO / "conf" and paths.data_dir() == REPO / "data"
    monkeypatch.setenv("MERGESWEEP_CONF", str(tmp_path / "c"))
    monkeypatch.setenv("MERGESWEEP_DATA", str(tmp_path / "d"))
    assert paths.conf_dir() == tmp_path / "c" and paths.data_dir() == tmp_path / "d"


def test_installed_copy_reads_its_package_data(no_overrides, monkeypatch, tmp_path):
    """Laid out as a wheel installs it: no checkout, so conf/data are the package's own; git is not asked."""
    from mergesweep.store import provenance

    package = tmp_path / "lib" / "python3.11" / "site-packages" / "mergesweep"
    (package / "conf").mkdir(parents=True)
    monkeypatch.setattr(paths, "PACKAGE", package)
    monkeypatch.setattr(paths, "REPO", package.parents[1])
    assert paths.checkout() is None
    assert paths.conf_dir() == package / "conf" and paths.data_dir() == package / "data"
    assert provenance.git_state() == {"sha": None, "dirty": False}
    monkeypatch.setenv("MERGESWEEP_DATA", str(tmp_path / "d"))
    assert paths.data_dir() == tmp_path / "d"


def test_user_groups_through_hydra_searchpath(tmp_path):
    """A model and an experiment preset from the user's own folder compose with the shipped groups."""
    from mergesweep.checks.check import compose_config

    mine = user_conf(tmp_path / "my_conf")
    cfg = compose_config([searchpath(mine), "model=my_toy", "merge=ties"])
    assert cfg["model"]["family"] == "my_toy" and cfg["merge"]["name"] == "ties"
    assert cfg["model"]["base"] == str(paths.data_dir() / "toy_pair" / "base")
    cfg = compose_config([searchpath(mine), "+experiment=my_study"])
    assert cfg["model"]["family"] == "my_toy" and cfg["sweep"]["name"] == "my_study"
    with pytest.raises(Exception, match="model/my_toy"):
        compose_config(["model=my_toy"])


def test_status_composes_with_the_runs_searchpath(tmp_path):
    """``mergesweep status`` recomputes a job's point id with the search path its run used."""
    from mergesweep.tools.status import _identify

    mine = user_conf(tmp_path / "my_conf")
    pid = _identify(["model=my_toy", "strength=0.5", "tracking=none"], None, "config", [f"file://{mine}"])
    assert pid.startswith("my_toy__linear__lam0.5__")
    with pytest.raises(Exception, match="model/my_toy"):
        _identify(["model=my_toy", "strength=0.5"], None, "config")


def test_export_reads_merge_yaml_through_paths(monkeypatch, tmp_path):
    from mergesweep.tools.export import _merge_conf

    (tmp_path / "merge").mkdir()
    (tmp_path / "merge" / "linear.yaml").write_text("name: linear\nknobs: {marker: 7}\n")
    monkeypatch.setenv("MERGESWEEP_CONF", str(tmp_path))
    assert _merge_conf("linear", None)["knobs"] == {"marker": 7}


# --- the wheel ---------------------------------------------------------------------------------------------------


def build_wheel(tmp_path: Path) -> Path:
    """A wheel of a copy of this checkout (the checkout itself gets no build/ folder); data/real/ holds a marker."""
    src = tmp_path / "checkout"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "real")
    for name in ("src", "conf", "data"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    (src / "data" / "real").mkdir()
    (src / "data" / "real" / "left_out.txt").write_text("the wheel leaves data/real/ out\n")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    proc = subprocess.run([*pip, "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("mergesweep-*.whl")
    return wheel


def fresh_venv(root: Path, wheel: Path) -> Path:
    """A venv with the wheel installed (no deps); this environment's site-packages as plain path lines after it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)]
    proc = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(site) / "mergesweep_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    return python


@pytest.mark.slow
def test_wheel_runs_a_toy_sweep_from_an_empty_folder(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("conf/config.yaml", "conf/model/toy.yaml", "data/toy_pair/base/model.safetensors"):
        assert f"mergesweep/{shipped}" in names, shipped
    assert "mergesweep/data/nltk/tokenizers/punkt_tab/english/sent_starters.txt" in names
    assert "mergesweep/evals/tasks/toy/utils.py" in names
    assert not [n for n in names if n.startswith("mergesweep/data/real/")]
    assert wheel.stat().st_size < 20e6, wheel.stat().st_size

    venv = tmp_path / "venv"
    python = fresh_venv(venv, wheel)
    work = tmp_path / "empty"
    work.mkdir()
    mine = user_conf(tmp_path / "my_conf")
    drop = ("PYTHONPATH", "MERGESWEEP_CONF", "MERGESWEEP_DATA", "MERGESWEEP_RESULTS", "NLTK_DATA")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(MERGESWEEP_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")

    def run(*argv: str, timeout: int = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
        return proc

    where = (
        "import json, mergesweep, mergesweep.paths as p; "
        "print(json.dumps([mergesweep.__file__, str(p.conf_dir()), str(p.data_dir()), p.checkout()]))"
    )
    module, conf, data, checkout = json.loads(run(str(python), "-c", where).stdout)
    package = Path(module).parent
    assert package.is_relative_to(venv) and checkout is None
    assert Path(conf) == package / "conf" and Path(data) == package / "data"

    sweep = [str(venv / "bin" / "mergesweep"), "-m", "strength=0,1", "engine=hf", "tracking=none", "model=my_toy"]
    small = ["suite.parts.icl.limit=6", "suite.parts.if.limit=3", "bootstrap=20", "sweep.name=w"]
    run(*sweep, searchpath(mine), *small)
    records = [json.loads(p.read_text()) for p in sorted((work / "results" / "w" / "records").glob("*.json"))]
    assert sorted(r["lam"] for r in records) == [0.0, 1.0]
    for r in records:
        assert r["complete"] and r["family"] == "my_toy" and set(r["summary"]) == {"icl", "if"}
        assert Path(r["config"]["model"]["base"]) == package / "data" / "toy_pair" / "base"
        assert r["provenance"]["git"]["sha"] is None
    assert (work / "results" / "w" / "tradeoff.png").is_file()
    status = run(str(venv / "bin" / "mergesweep"), "status", "results/w", timeout=300)
    assert "expected 2, done 2" in status.stdout, status.stdout
