"""What the fault matrix's cases run on: a command's outcome (``Run``), the shared state of one matrix run
(``Matrix``: a temp results folder, an offline environment, the baseline records later cases must leave alone)
and the one-line-error verdict most cases share. Kept apart from the cases (``fault_cases.py``) and the report
(``fault_matrix.py``) so a new case reads as its command and its expectation only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "data" / "toy_pair"
SMALL = ["tracking=none", "suite.parts.icl.limit=2", "suite.parts.if.limit=2", "bootstrap=0"]
ENGINE_STARTED = re.compile(r"vLLM \(.*\) started in|transformers engine .* loaded")
NETWORK = re.compile(r"\[nltk_data\]|urlopen error|Downloaded punkt|Connection refused|Max retries exceeded")
TOKEN = "hf_Fault0Matrix1Token2Value3"


@dataclass
class Run:
    """One command's outcome."""

    rc: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err

    @property
    def stderr_lines(self) -> int:
        return len([x for x in self.err.splitlines() if x.strip()])

    @property
    def engine_started(self) -> bool:
        return bool(ENGINE_STARTED.search(self.text))

    @property
    def one_line_error(self) -> bool:
        """Exit != 0, no traceback, and exactly one stderr line, which is the error."""
        lines = [x for x in self.err.splitlines() if x.strip()]
        return self.rc != 0 and "Traceback" not in self.text and len(lines) == 1 and "error:" in lines[0]


class Matrix:
    """The shared state: a temp root, the baseline sweep and its records' bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.results = root / "results"
        self.env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        self.env.update(MERGESWEEP_RESULTS=str(self.results), PYTHONUNBUFFERED="1", HF_TOKEN=TOKEN)
        src = str(REPO / "src")  # this checkout's code, even where another checkout is installed in the venv
        self.env["PYTHONPATH"] = os.pathsep.join(x for x in (src, self.env.get("PYTHONPATH", "")) if x)
        # any outbound connection attempt fails at once and says so (item 1 greps for the noise it leaves)
        self.env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="")
        self.baseline: dict[Path, bytes] = {}

    def run(self, args: list[str], timeout: int = 600, env: dict | None = None) -> Run:
        t0 = time.perf_counter()
        p = subprocess.run(
            [sys.executable, *args],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)

    def sweep(self, *overrides: str, **kw) -> Run:
        return self.run(["-m", "mergesweep.app.cli", "-m", *overrides, *SMALL], **kw)

    def snapshot(self) -> None:
        """Remember every record written so far (the data later cases must not touch)."""
        self.baseline = {p: p.read_bytes() for p in self.results.rglob("records/*.json")}

    def intact(self) -> bool:
        from mergesweep.store.records import RecordError, read_record

        for p, data in self.baseline.items():
            try:
                read_record(p)
            except RecordError:
                return False
            if not p.is_file() or p.read_bytes() != data:
                return False
        return True

    def leaked(self, value: str) -> list[str]:
        """Files under the results folder that hold ``value``."""
        return [str(p) for p in self.results.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]


def one_line(r: Run, m: Matrix, engine: bool = False) -> tuple[bool, str]:
    ok = r.one_line_error and (engine or not r.engine_started)
    return ok, "" if ok else f"rc={r.rc}, {r.stderr_lines} stderr lines, engine started: {r.engine_started}"
