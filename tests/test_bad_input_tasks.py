"""Task data is checked while tasks are built, before any engine starts (issue 10): IFEval instruction ids in
every IFEval-format task, a suite's own prompt file, extra task folders, TREC demonstrations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from mergesweep.app.cli import preflight
from mergesweep.errors import DataError, SuiteError
from mergesweep.evals.suite import TASKS_DIR
from mergesweep.paths import conf_dir

from .conftest import REPO

GOOD = [
    {
        "key": 1,
        "prompt": "Describe a lamp. Answer with less than 9 words.",
        "instruction_id_list": ["length_constraints:number_words"],
        "kwargs": [{"relation": "less than", "num_words": 9}],
    },
    {
        "key": 2,
        "prompt": "Describe bread without commas.",
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{}],
    },
]
TYPO = {"key": 3, "prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comas"], "kwargs": [{}]}


def cfg_with(*overrides: str):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_toy_ifeval_names_an_unknown_instruction_id_up_front(tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(REPO / "data" / "toy_suites", data / "toy_suites")
    rows = (data / "toy_suites" / "toy_ifeval.jsonl").read_text().splitlines()
    bad = json.loads(rows[4])
    bad["instruction_id_list"][0] = "detectable_format:no_such_check"
    rows[4] = json.dumps(bad)
    (data / "toy_suites" / "toy_ifeval.jsonl").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("MERGESWEEP_DATA", str(data))
    with pytest.raises(DataError, match=r"row 5 .*unknown IFEval .*\['detectable_format:no_such_check'\]"):
        preflight(cfg_with(f"results_dir={tmp_path / 'res'}", "suite.parts.icl.tasks=[toy_recall_colors]"))


def test_a_suite_reads_its_own_prompt_file(tmp_path):
    from mergesweep.evals import prompts, suite

    path = jsonl(tmp_path / "mine.jsonl", GOOD)
    part = {"tasks": ["toy_ifeval"], "metric": "prompt_level_strict_acc", "prompt_file": str(path)}
    tm = suite.task_manager(False)
    task = tm.load(prompts.task_specs(tm, part))["tasks"]["toy_ifeval"]
    docs = list(task.test_docs())
    assert [d["prompt"] for d in docs] == [r["prompt"] for r in GOOD]
    shipped = tm.load(["toy_ifeval"])["tasks"]["toy_ifeval"]
    assert len(list(shipped.test_docs())) > len(GOOD)  # without the option: the shipped prompts
    for t in ("toy_ifeval", "ifeval_local"):  # and the full preflight accepts it for both IFEval-format tasks
        preflight(
            cfg_with(
                f"results_dir={tmp_path / 'res'}",
                f"suite.parts.if.tasks=[{t}]",
                f"+suite.parts.if.prompt_file={path}",
                "+suite.parts.if.gen_kwargs.max_gen_toks=160",  # ifeval_local's 1280 exceed the toy model's positions
            )
        )


def test_prompt_file_with_a_typo_is_named_before_the_engine(tmp_path):
    path = jsonl(tmp_path / "mine.jsonl", GOOD + [TYPO])
    with pytest.raises(DataError, match=r"mine.jsonl: row 3 \(key 3\): unknown IFEval .*\['punctuation:no_comas'\]"):
        preflight(cfg_with(f"results_dir={tmp_path / 'res'}", f"+suite.parts.if.prompt_file={path}"))
    with pytest.raises(DataError, match="prompt_file not found"):
        preflight(cfg_with(f"results_dir={tmp_path / 'res'}", f"+suite.parts.if.prompt_file={tmp_path / 'nope.jsonl'}"))
    with pytest.raises(SuiteError, match="toy_recall_colors.*does not read IFEval-format prompts"):
        preflight(cfg_with(f"results_dir={tmp_path / 'res'}", f"+suite.parts.icl.prompt_file={path}"))


def test_extra_task_folder(tmp_path):
    tasks = tmp_path / "my_tasks"
    tasks.mkdir()
    prompts_file = jsonl(tmp_path / "mine.jsonl", GOOD + [TYPO])
    (tasks / "my_ifeval.yaml").write_text(
        f"include: {TASKS_DIR / 'ifeval' / 'ifeval_local.yaml'}\ntask: my_ifeval\n"
        f"dataset_kwargs:\n  prompt_file: {prompts_file}\n"
    )
    over = (
        f"results_dir={tmp_path / 'res'}",
        f"+suite.task_dirs=[{tasks}]",
        "suite.parts.if.tasks=[my_ifeval]",
        "+suite.parts.if.gen_kwargs.max_gen_toks=160",  # ifeval_local's 1280 exceed the toy model's positions
    )
    with pytest.raises(DataError, match=r"unknown IFEval instruction id\(s\) \['punctuation:no_comas'\]"):
        preflight(cfg_with(*over))
    jsonl(prompts_file, GOOD)
    preflight(cfg_with(*over))
    with pytest.raises(SuiteError, match="task_dirs entry"):
        preflight(cfg_with(f"+suite.task_dirs=[{tmp_path / 'missing'}]"))


@pytest.mark.parametrize("name", ["trec", "cb", "copa"])
def test_no_test_item_is_in_the_demonstration_pool(name):
    from mergesweep.evals import suite
    from mergesweep.evals.data import read_jsonl
    from mergesweep.paths import data_dir

    task = suite.task_manager(False).load([f"icl_{name}_mc"])["tasks"][f"icl_{name}_mc"]
    pool = list(task.training_docs())
    test = [
        r["text"] if "text" in r else json.dumps(r, sort_keys=True)
        for r in (dict(r, label=None, src=None) for r in read_jsonl(data_dir() / "icl" / f"{name}.test.jsonl"))
    ]
    train_raw = read_jsonl(data_dir() / "icl" / f"{name}.train.jsonl")
    shown = {task.doc_to_text(d) for d in pool}
    assert not shown & {task.doc_to_text(d) for d in task.test_docs()}

    # independent count from the raw files: train rows whose inputs equal some test row's are the ones left out
    def key(r: dict) -> str:
        return r["text"] if "text" in r else json.dumps(dict(r, label=None, src=None), sort_keys=True)

    expected_out = sum(key(r) in set(test) for r in train_raw)
    assert len(pool) == len(train_raw) - expected_out
    assert (name != "trec") or expected_out == 2  # the two TREC questions the issue found


def test_full_disk_leaves_no_temporary_samples_file(tmp_path, monkeypatch):
    import errno

    from mergesweep.evals import suite

    real_open = open

    class FullDisk:
        """A file whose second write finds the disk full (what /dev/full does to every write)."""

        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, text):
            self.n += 1
            if self.n == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(text)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr("builtins.open", lambda *a, **k: FullDisk(real_open(*a, **k)))
    target = tmp_path / "toy_ifeval.jsonl"
    with pytest.raises(OSError, match="No space left"):
        suite._write_samples(target, [{"doc_id": i, "resps": ["x" * 10]} for i in range(5)])
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == [], "neither a partial samples file nor its .jsonl.tmp may stay"
