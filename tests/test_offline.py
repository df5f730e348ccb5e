"""Issue 20, item 1: with ``offline=true`` (the default) no process of any entry point tries the network.

Each command runs as a user would run it, in a subprocess whose environment has none of the variables the test
suite sets for itself (``NLTK_DATA``, the hub's offline flags): the entry point must set them before its first
import that can reach out. ``tests/netblock/sitecustomize.py`` makes every outbound attempt (DNS lookup or
connect) in any Python process fail and leave a line in a marker file; the test asserts the file stays absent
and that nltk printed no ``[nltk_data]`` download lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NETBLOCK = Path(__file__).parent / "netblock"
# What conftest.py (and a developer's shell) may have set: the entry points must not depend on them.
UNSET = ("NLTK_DATA", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HYDRA_FULL_ERROR")
TINY = ("suite.parts.icl.limit=10", "suite.parts.if.limit=4", "bootstrap=20")


def blocked_env(marker: Path, results: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    src = str(REPO / "src")
    env.update(
        MS_NET_MARKER=str(marker),
        MERGESWEEP_RESULTS=str(results),
        PYTHONPATH=os.pathsep.join([str(NETBLOCK), src, *filter(None, [os.environ.get("PYTHONPATH")])]),
        PYTHONUNBUFFERED="1",
    )
    return env


def run(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def assert_offline(proc: subprocess.CompletedProcess, marker: Path, what: str) -> None:
    attempts = marker.read_text() if marker.exists() else ""
    assert not attempts, f"{what} tried the network:\n{attempts[:3000]}"
    assert "[nltk_data]" not in proc.stdout + proc.stderr, f"{what}: nltk tried a download:\n{proc.stderr[-2000:]}"


def test_the_network_block_works(tmp_path):
    """The harness itself: a lookup of a public host is refused and recorded (else the test below tests nothing)."""
    marker = tmp_path / "net.log"
    code = "import socket\ntry:\n    socket.create_connection(('example.com', 443), timeout=5)\nexcept OSError: pass"
    run(blocked_env(marker, tmp_path), "-c", code)
    assert "getaddrinfo 'example.com'" in marker.read_text()


def test_bad_input_error_is_one_line_with_no_network_attempt(tmp_path):
    """The pre-engine checks import lm-eval's IFEval helper: before, that printed four ``[nltk_data]`` lines
    (a download attempt) ahead of the one-line error."""
    marker = tmp_path / "net.log"
    env = blocked_env(marker, tmp_path / "res")
    proc = run(env, "-m", "mergesweep.app.cli", f"model.base={tmp_path / 'nowhere'}", "tracking=none")
    assert proc.returncode != 0 and "mergesweep: error: checkpoint directory not found" in proc.stderr
    assert_offline(proc, marker, "a run stopped by its checks")


@pytest.mark.slow
def test_sweep_verify_and_tools_stay_offline(tmp_path):
    """A real toy sweep point (multirun, the default W&B offline tracking, a sweep name Hydra reads as a number),
    then ``verify --full``, ``status``, ``report``, ``check`` and ``mergesweep-export``: no network attempt."""
    marker = tmp_path / "net.log"
    results = tmp_path / "res"
    env = blocked_env(marker, results)
    proc = run(env, "-m", "mergesweep.app.cli", "-m", "strength=0.5", "sweep.name=123", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_offline(proc, marker, "the sweep")
    records = sorted((results / "123" / "records").glob("*.json"))
    record = json.loads(records[0].read_text())
    assert len(records) == 1 and record["sweep"] == "123"
    sizes = {k: record["engine"].get(k) for k in ("max_model_len", "kv_cache_gib", "max_gen_toks")}
    assert sizes == {"max_model_len": 1024, "kv_cache_gib": 1, "max_gen_toks": 160}, "chosen engine sizes recorded"

    steps = {
        "verify": ["-m", "mergesweep.app.cli", "verify", "--full", str(records[0])],
        "status": ["-m", "mergesweep.app.cli", "status", str(results / "123")],
        "report": ["-m", "mergesweep.report.report", str(results / "123")],
        "check": ["-m", "mergesweep.app.cli", "check", "model=toy"],
        "export": [
            "-m",
            "mergesweep.tools.export",
            "--base",
            str(REPO / "data" / "toy_pair" / "base"),
            "--instruct",
            str(REPO / "data" / "toy_pair" / "instruct"),
            "--lam",
            "0.5",
            "--out",
            str(tmp_path / "exported"),
        ],
    }
    for what, args in steps.items():
        proc = run(env, *args)
        assert proc.returncode == 0, f"{what}: {proc.stderr[-3000:]}"
        assert_offline(proc, marker, what)
