"""Reports never lie by omission: single-part suites, unreadable records, empty folders, several sweeps.

Records are written with the real RecordStore and typed Record (no engine needed); the CLI runs as a
subprocess, as a user would run it.
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from mergesweep.report.report import NoRecords, load_table, write_report
from mergesweep.store.records import RecordStore
from tests.test_records import make_record


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mergesweep.app.cli", "report", *args], capture_output=True, text=True, timeout=120
    )


def sweep(tmp_path, name: str, icl: bool = True, if_: bool = True, lams=(0.0, 0.5, 1.0)):
    store = RecordStore(tmp_path / name)
    for lam in lams:
        store.write(
            make_record(
                pid=f"toy__linear__lam{lam}__{name}",
                lam=lam,
                sweep=name,
                icl=0.8 - 0.3 * lam if icl else None,
                if_=0.1 + 0.5 * lam if if_ else None,
            )
        )
    return store.root


@pytest.mark.parametrize("part", ["icl", "if"])
def test_single_part_suite_is_plotted_and_tabulated(tmp_path, part):
    d = sweep(tmp_path, "one", icl=part == "icl", if_=part == "if")
    out = write_report(d)  # today: TypeError from the plot (summary.<other part> is None)
    assert out["plot"].stat().st_size > 5_000
    md = out["markdown"].read_text()
    other = "if" if part == "icl" else "icl"
    assert f"No {other.upper()} part" in md
    header = md.split("|")[1:14]
    assert f" {part} " in "|".join(header) and f" {other} " not in "|".join(header)
    df = pd.read_csv(out["csv"])
    want = {0.0: 0.8, 0.5: 0.65, 1.0: 0.5} if part == "icl" else {0.0: 0.1, 0.5: 0.35, 1.0: 0.6}
    assert dict(zip(df["lam"], df[part].round(6))) == want
    assert df[other].isna().all()


def test_unreadable_records_are_named_and_skipped(tmp_path, caplog):
    d = sweep(tmp_path, "s")
    (d / "records" / "garbage.json").write_bytes(b"\xff\x00 not json")
    (d / "records" / "torn.json").write_text('{"schema": 2, "point_id": "x", "compl')
    with caplog.at_level("WARNING"):
        df = load_table(d)
    assert len(df) == 3
    warned = caplog.text
    assert "garbage.json" in warned and "torn.json" in warned
    md = write_report(d)["markdown"].read_text()
    assert "garbage.json" in md and "torn.json" in md and "Skipped record files" in md
    proc = run_cli(str(d))
    assert proc.returncode == 0, proc.stderr
    assert "garbage.json" in proc.stderr and "torn.json" in proc.stderr


def test_empty_or_missing_folder_is_one_line(tmp_path):
    (tmp_path / "empty" / "records").mkdir(parents=True)
    for d in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(NoRecords):
            write_report(d)
        proc = run_cli(str(d))
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mergesweep report: error:") and str(d) in lines[0], proc.stderr
    assert "no such folder" in run_cli(str(tmp_path / "missing")).stderr


def test_report_spans_several_sweep_folders(tmp_path):
    a, b = sweep(tmp_path, "a"), sweep(tmp_path, "b", lams=(0.25, 0.75))
    df = load_table([a, b])
    assert list(df["sweep"]) == ["a"] * 3 + ["b"] * 2
    proc = run_cli(str(a), str(b), "--out", str(tmp_path / "both"))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "both" / "report.md").read_text()
    assert "Sweeps 'a', 'b'" in md and md.count("| toy ") == 5 and (tmp_path / "both" / "tradeoff.png").is_file()
    needs_out = run_cli(str(a), str(b))
    assert needs_out.returncode != 0 and "--out" in needs_out.stderr
