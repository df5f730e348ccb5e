"""Degenerate outputs are results (issue 20): a point whose generations are all empty is recorded with the flag
``all_generations_empty``, and ``status``, the report (report.md, records.csv) and the figures show it.

No engine: a stub LM that answers every generation with "" goes through the real ``suite.run`` on the toy IF task;
records are written with the real RecordStore, ``status`` reads a real saved run config.
"""

from __future__ import annotations

import matplotlib.axes
import pandas as pd
from lm_eval.api.model import LM

from mergesweep.evals import suite as suites
from mergesweep.report.report import write_report
from mergesweep.store.records import RecordStore
from tests.test_records import make_record

FLAG = "all_generations_empty"


class SilentLM(LM):
    """Every generation empty: what a model broken by an extreme strength answers."""

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return [(-1.0, False) for _ in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm: bool = False):
        return ["" for _ in requests]


def test_all_empty_generations_are_a_flagged_result_not_a_failure(tmp_path):
    part = {"tasks": ["toy_ifeval"], "metric": "prompt_level_strict_acc", "chat_template": False, "limit": 3}
    out = suites.run(SilentLM(), {"name": "toy", "parts": {"if": part}}, tmp_path, seed=1, bootstrap=0)
    assert out.flags == [FLAG] and out.parts["if"]["flags"] == {"toy_ifeval": FLAG}
    assert out.summary["if"] == 0.0


def flagged_sweep(tmp_path):
    store = RecordStore(tmp_path / "s")
    for lam in (0.0, 0.5, 8.0):
        rec = make_record(pid=f"toy__linear__lam{lam}__s", lam=lam, icl=0.8 - 0.05 * lam, if_=0.0 if lam > 1 else 0.4)
        rec.flags = [FLAG] if lam > 1 else []
        store.write(rec)
    return store.root


def test_report_and_figures_show_flagged_points(tmp_path, monkeypatch):
    drawn: list[str] = []
    real = matplotlib.axes.Axes.scatter

    def scatter(self, *args, **kwargs):  # record what each plot marks
        drawn.append(str(kwargs.get("label")))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", scatter)
    out = write_report(flagged_sweep(tmp_path))
    df = pd.read_csv(out["csv"], keep_default_na=False)
    assert dict(zip(df["lam"], df["flags"])) == {0.0: "", 0.5: "", 8.0: FLAG}
    md = out["markdown"].read_text()
    assert "## Flagged points" in md and f"λ=8: {FLAG}" in md and "| flags" in md
    assert "degenerate output (flagged)" in drawn, drawn


def test_status_shows_flagged_done_points(tmp_path):
    from mergesweep.tools.status import _identify, format_status, sweep_status

    sweep_dir = tmp_path / "s"
    job = ["strength=8", "tracking=none"]
    hydra_dir = sweep_dir / "hydra" / "run-1" / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "overrides.yaml").write_text("".join(f"- {o}\n" for o in job))
    rec = make_record(pid=_identify(job, None, "config"), lam=8.0, if_=0.0)
    rec.flags = [FLAG]
    RecordStore(sweep_dir).write(rec)
    text = format_status(sweep_dir, sweep_status(sweep_dir))
    assert "done 1" in text and "1 done point(s) flagged" in text
    assert any(line.strip().startswith("done") and f"flagged: {FLAG}" in line for line in text.splitlines()), text
