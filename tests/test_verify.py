"""``mergesweep verify``: fast re-scoring is exact and catches any edited number or sample; full mode checks
checkpoint hashes, re-runs the point on vLLM and matches, also for a record whose checkpoints moved.

One real point (vLLM, small limits) is swept on a copy of the toy pair; the copy is then moved, so the recorded
paths no longer exist and ``--model-root`` must find the checkpoints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .console import REPO, mergesweep

pytestmark = pytest.mark.slow
SMALL = ["sweep.name=v", "tracking=none", "suite.parts.icl.limit=20", "suite.parts.if.limit=8", "bootstrap=50"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """(sweep folder, where the pair lives now): swept at root/a, then moved to root/b."""
    root = tmp_path_factory.mktemp("verify")
    shutil.copytree(REPO / "data" / "toy_pair", root / "a" / "toy_pair")
    pair = root / "a" / "toy_pair"
    proc = mergesweep(
        "-m",
        "strength=0.5",
        f"model.base={pair}/base",
        f"model.instruct={pair}/instruct",
        *SMALL,
        results=root / "results",
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (root / "a").rename(root / "b")
    return root / "results" / "v", root / "b"


def record(sweep_dir: Path) -> Path:
    (path,) = (sweep_dir / "records").glob("*.json")
    return path


def rows(out: str, name: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.strip().startswith(name + " ")]


def test_fast_mode_rescoring_is_exact(swept):
    sweep_dir, _ = swept
    proc = mergesweep("verify", str(record(sweep_dir)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads(record(sweep_dir).read_text())
    for part, pm in rec["metrics"].items():
        for task, metrics in pm["tasks"].items():
            for m in metrics:
                if m != "sample_len":
                    assert rows(proc.stdout, f"{part}/{task}/{m}")[0].endswith(" ok"), (part, task, m)
    for name in ("summary.icl", "summary.if", "ci.icl.low", "ci.if.high"):
        assert rows(proc.stdout, name)[0].endswith(" ok")
    assert "1 of 1 record(s) pass" in proc.stdout


@pytest.mark.parametrize("edit", ["metric", "summary", "ci", "sample_score"])
def test_fast_mode_catches_any_edit(swept, tmp_path, edit, capsys):
    from mergesweep.tools.verify import verify_record

    sweep_dir, _ = swept
    copy = tmp_path / "v"
    shutil.copytree(sweep_dir, copy)
    path = record(copy)
    rec = json.loads(path.read_text())
    if edit == "metric":
        rec["metrics"]["icl"]["tasks"]["toy_recall_colors"]["acc"] += 0.05
        want = "icl/toy_recall_colors/acc"
    elif edit == "summary":
        rec["summary"]["if"] += 1e-9
        want = "summary.if"
    elif edit == "ci":
        rec["ci"]["icl"]["low"] -= 1e-6
        want = "ci.icl.low"
    else:  # a stored per-sample score that does not follow from its response
        samples = copy / rec["samples"]["toy_recall_numbers"]
        lines = [json.loads(x) for x in samples.read_text().splitlines()]
        lines[3]["acc"] = 1.0 - lines[3]["acc"]
        samples.write_text("".join(json.dumps(x) + "\n" for x in lines))
        want = "icl/toy_recall_numbers/samples differing in acc"
    path.write_text(json.dumps(rec))
    assert verify_record(path, full=False, roots=[], scratch=None) is False
    out = capsys.readouterr().out
    assert rows(out, want) and rows(out, want)[0].endswith("MISMATCH"), out
    mismatched = [ln.split()[0] for ln in out.splitlines() if ln.endswith("MISMATCH")]
    edited_file = ["icl/toy_recall_numbers/samples"] if edit == "sample_score" else []  # its sha256 row too
    assert sorted(mismatched) == sorted([want.split()[0], *edited_file]), out  # only the edited number (and file)
    assert "FAIL" in out


def test_fast_mode_catches_a_rewritten_response_whose_score_was_kept(swept, tmp_path, capsys):
    """Issue 20 item 7: re-scoring cannot see an edit that keeps every score; the samples file's sha256 can."""
    from mergesweep.tools.verify import verify_record

    sweep_dir, _ = swept
    copy = tmp_path / "v"
    shutil.copytree(sweep_dir, copy)
    rec = json.loads(record(copy).read_text())
    samples = copy / rec["samples"]["toy_ifeval"]
    lines = [json.loads(x) for x in samples.read_text().splitlines()]
    lines[0]["resps"] = [["a response nobody generated"]]  # the raw response rewritten, scores left as they are
    samples.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert verify_record(record(copy), full=False, roots=[], scratch=None) is False
    out = capsys.readouterr().out
    assert [ln.split()[0] for ln in out.splitlines() if ln.endswith("MISMATCH")] == ["if/toy_ifeval/samples"], out
    assert "FAIL" in out


def test_a_schema_2_record_still_verifies_and_says_what_it_cannot_check(swept, tmp_path, capsys):
    from mergesweep.tools.verify import verify_record

    sweep_dir, _ = swept
    copy = tmp_path / "v"
    shutil.copytree(sweep_dir, copy)
    rec = json.loads(record(copy).read_text())
    rec["schema"] = 2
    del rec["samples_sha256"], rec["flags"]
    record(copy).write_text(json.dumps(rec))
    assert verify_record(record(copy), full=False, roots=[], scratch=None) is True
    assert "schema-2 record: no sha256 of its samples files" in capsys.readouterr().out


def test_full_mode_reruns_a_moved_record_and_matches(swept, tmp_path):
    sweep_dir, pair = swept
    copy = tmp_path / "elsewhere" / "v"
    shutil.copytree(sweep_dir, copy)  # a record copied to another place, checkpoints moved too
    proc = mergesweep("verify", "--full", "--model-root", str(pair), "--scratch", str(tmp_path), str(record(copy)))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "checkpoint hashes: all match" in proc.stdout
    full = proc.stdout.split("re-generated and re-scored")[1]
    for name in ("icl/toy_recall_colors/acc", "icl/toy_recall_numbers/acc", "summary.icl", "ci.icl.high"):
        assert rows(full, name)[0].endswith(" ok"), name  # log-likelihood metrics: exact, no tolerance
    assert "(tol 0.2500)" in rows(full, "if/toy_ifeval/prompt_level_strict_acc")[0] or rows(
        full, "if/toy_ifeval/prompt_level_strict_acc"
    )[0].endswith(" ok")
    assert "PASS" in proc.stdout


def test_full_mode_names_changed_checkpoint_files(swept, tmp_path):
    sweep_dir, pair = swept
    changed = tmp_path / "pair"
    shutil.copytree(pair / "toy_pair", changed / "toy_pair")
    weights = changed / "toy_pair" / "instruct" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one flipped bit in the last weight
    weights.write_bytes(bytes(data))
    proc = mergesweep("verify", "--full", "--model-root", str(changed), str(record(sweep_dir)))
    assert proc.returncode != 0
    assert f"instruct: {weights} has sha256" in proc.stdout, proc.stdout
    assert "not re-running" in proc.stdout and "re-generated" not in proc.stdout
