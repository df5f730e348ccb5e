"""Bad input to a real ``mergesweep -m`` process: one clear line before any engine starts, nothing written
(issue 10). Each test runs the console entry point in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .console import COMMAND, REPO, cli_env, mergesweep

SECRET = "s3cr3t-Value-0123456789abcdef"
TINY = ("tracking=none", "suite.parts.icl.limit=10", "suite.parts.if.limit=4", "bootstrap=20")


def run(results: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return mergesweep(*args, results=results, timeout=timeout)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return [x for x in proc.stderr.splitlines() if x.startswith("mergesweep: error:")]


def written(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_one_bad_strength_among_many_stops_before_point_zero(tmp_path):
    proc = run(tmp_path, "-m", "strength=0,abc,1", "tracking=none")
    lines = error_lines(proc)
    assert len(lines) == 1 and "job #1 (strength=abc" in lines[0] and "'abc'" in lines[0], proc.stderr[-2000:]
    assert "Launching" not in proc.stdout + proc.stderr, "a job was launched"
    assert written(tmp_path) == [], "nothing may be written (no multirun.yaml, no record)"


def test_bad_knob_value_among_many_names_each_bad_job(tmp_path):
    proc = run(tmp_path, "-m", "merge=ties", "merge.knobs.density=0.2,1.5", "strength=0,1", "tracking=none")
    lines = error_lines(proc)
    assert len(lines) == 2 and all("density=1.5" in x and "density must be in [0, 1]" in x for x in lines), lines
    assert written(tmp_path) == []


def test_single_run_checks_before_hydra_writes(tmp_path):
    proc = run(tmp_path, "seed=abc", "tracking=none")
    assert error_lines(proc) == ["mergesweep: error: seed must be an integer (e.g. seed=1234), got 'abc'"]
    assert written(tmp_path) == [], "not even Hydra's .hydra/*.yaml"


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/abs_sweep_name_x"])
def test_sweep_name_must_stay_inside_results(tmp_path, name):
    results = tmp_path / "a" / "b"
    results.mkdir(parents=True)
    proc = run(results, "-m", f"sweep.name={name}", "strength=0", "tracking=none")
    assert any("sweep.name must be a plain folder name" in x for x in error_lines(proc))
    assert written(tmp_path) == [] and not Path("/tmp/abs_sweep_name_x").exists()


@pytest.mark.parametrize("mode", [[], ["-m"]])
def test_secret_override_never_reaches_disk_or_console(tmp_path, mode):
    proc = run(tmp_path, *mode, f"+model.token={SECRET}", "strength=0", "tracking=none")
    lines = error_lines(proc)
    assert lines and "model.token looks like a secret" in lines[0]
    assert SECRET not in proc.stdout + proc.stderr
    leaks = [p for p in written(tmp_path) if SECRET.encode() in p.read_bytes()]
    assert leaks == [] and written(tmp_path) == []


def test_secret_shaped_value_under_any_key_is_refused(tmp_path):
    proc = run(tmp_path, "+model.extra=hf_ABCDEFGHIJKLMNOPQRSTUVWXYZ", "tracking=none")
    assert any("model.extra looks like a secret" in x for x in error_lines(proc))


@pytest.mark.slow
def test_ctrl_c_prints_one_line_and_keeps_records_whole(tmp_path):
    proc = subprocess.Popen(
        [*COMMAND, "-m", "strength=0,0.25,0.5,0.75,1", *TINY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(tmp_path),
        cwd=REPO,
        start_new_session=True,
        # A terminal's foreground job has SIGINT at its default; a test run started in the background by a shell
        # inherits it ignored, and Python then never raises KeyboardInterrupt (the sweep ran on, rc 0).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # its own process group, like a terminal's foreground job
    records = tmp_path / "default" / "records"
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None and not list(records.glob("*.json")):
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: every process of the foreground group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("mergesweep: interrupted")
    recs = [json.loads(p.read_text()) for p in records.glob("*.json")]
    assert recs and all(r["complete"] is True and r["summary"]["icl"] is not None for r in recs)
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name], "temporary files left behind"


def test_literal_secret_in_a_config_file_is_refused(tmp_path):
    extra = tmp_path / "my_conf" / "model"
    extra.mkdir(parents=True)
    (extra / "leaky.yaml").write_text(f"defaults:\n  - toy\n  - _self_\nhf_token: {SECRET}\n")
    (extra / "safe.yaml").write_text("defaults:\n  - toy\n  - _self_\nhf_token: ${oc.env:NO_SUCH_VAR_X,''}\n")
    res = tmp_path / "res"
    proc = run(res, "--config-dir", str(tmp_path / "my_conf"), "model=leaky", "seed=abc", "tracking=none")
    assert any("model.hf_token holds a literal secret" in x for x in error_lines(proc))
    assert SECRET not in proc.stdout + proc.stderr and written(res) == []
    proc = run(res, "--config-dir", str(tmp_path / "my_conf"), "model=safe", "seed=abc", "tracking=none")
    assert error_lines(proc) == ["mergesweep: error: seed must be an integer (e.g. seed=1234), got 'abc'"]


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ("+model.note=hf_abc123", "model.note looks like a secret"),
        ("+model.extra=sk-proj-abc123def456", "model.extra looks like a secret"),
        ("+extra.note=xoxb-123456-abcdef", "extra.note looks like a secret"),
        ("+extra.note=AKIAIOSFODNN7EXAMPLE", "extra.note looks like a secret"),
        ("+extra.note=aB3xY9kLmN0pQ7rS2tUvW4xZ6yA8bC1dE3", "extra.note looks like a secret"),
        ("+model.note=${oc.env:HF_TOKEN}", "model.note reads the secret-looking variable HF_TOKEN"),
        ("+model.note=just-a-note", "+model.note: unknown config key"),
    ],
)
def test_secrets_under_harmless_keys_and_unknown_keys_are_refused(tmp_path, override, why):
    """Issue 20 item 6: token-shaped values under any key, secret env interpolations, unknown ``+`` keys."""
    for mode in ([], ["-m"]):
        proc = run(tmp_path, *mode, override, "strength=0", "tracking=none")
        lines = error_lines(proc)
        assert len(lines) == 1 and why in lines[0], proc.stderr[-2000:]
        value = override.partition("=")[2]
        assert value not in proc.stdout + proc.stderr or "oc.env" in value
        assert written(tmp_path) == [], "nothing under the results folder, not even .hydra/*.yaml"


def test_harmless_values_and_extra_notes_pass_the_secret_check():
    """What configs legitimately hold is not mistaken for a token: hashes, paths, hub ids, point ids."""
    from mergesweep.checks.schema import unknown_added
    from mergesweep.store.provenance import looks_like_token

    harmless = [
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "/data/hf_models/base",
        "hf_cache",
        "sk-learn",
        "toy__linear__lam0.5__abcdef1234",
        "${oc.env:MERGESWEEP_RESULTS,results}",
    ]
    assert [v for v in harmless if looks_like_token(v)] == []
    assert (
        unknown_added(["+extra.note=x", "+model.target=/t", "+experiment=y", "++block_strengths=[0,1]"], ["experiment"])
        == []
    )
