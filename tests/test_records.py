"""Records: typed schema, atomic writes, point identity, failure entries, guards, no credential written.

Everything here runs without an engine: point ids come from the real Hydra config (``points.identify``), guards
from a real MergePlan over copies of the toy pair with a planted NaN.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mergesweep.guards import BrokenResults, NonFiniteError, check_part
from mergesweep.store.provenance import REDACTED, redact
from mergesweep.store.records import (
    CI,
    SCHEMA,
    PartMetrics,
    Record,
    RecordStore,
    Summary,
    Timings,
    point_id,
    read_record,
)

TOY = Path(__file__).resolve().parents[1] / "data" / "toy_pair"


def make_record(
    pid: str = "toy__linear__lam0.5__x",
    lam: float = 0.5,
    icl: float | None = 0.6,
    if_: float | None = 0.4,
    sweep: str = "s",
) -> Record:
    parts = {}
    if icl is not None:
        parts["icl"] = PartMetrics(metric="acc", tasks={"t1": {"acc": icl}}, n={"t1": 10})
    if if_ is not None:
        parts["if"] = PartMetrics(
            metric="prompt_level_strict_acc",
            tasks={"t2": {"prompt_level_strict_acc": if_}},
            n={"t2": 10},
            extra={"judge": None},
        )
    ci = {
        p: CI(low=v - 0.1, high=v + 0.1, n_resamples=10, seed=1)
        for p, v in (("icl", icl), ("if", if_))
        if v is not None
    }
    return Record(
        point_id=pid,
        sweep=sweep,
        family="toy",
        method="linear",
        lam=lam,
        summary=Summary(icl, if_),
        metrics=parts,
        ci=ci,
        times=Timings(merge_s=0.1, swap_s=0.2, eval_s={"icl": 1.0}),
        seeds={"seed": 1, "if_checkers": 0},
    )


def test_point_id_holds_the_exact_strength_and_config():
    a = point_id("toy", "linear", 0.5, {"suite": {"limit": None}})
    assert a == point_id("toy", "linear", 0.5, {"suite": {"limit": None}})
    assert a != point_id("toy", "linear", 0.5, {"suite": {"limit": 10}})
    assert a.startswith("toy__linear__lam0.5__")
    b = point_id("toy", "linear", 0.5000004, {"suite": {"limit": None}})
    assert b != a and "lam0.5000004__" in b, "lam=0.5000004 must not be taken for lam=0.5"
    assert float(b.split("__lam")[1].split("__")[0]) == 0.5000004  # the id's text round-trips
    assert point_id("toy", "linear", 1.0, {}).startswith("toy__linear__lam1__")


def _identify(*overrides: str) -> str:
    from hydra import compose, initialize_config_dir

    from mergesweep.app import cli
    from mergesweep.paths import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return cli.identify(compose(config_name="config", overrides=list(overrides)))[0]


def test_point_id_follows_checkpoint_contents_not_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("MERGESWEEP_CACHE", str(tmp_path / "cache"))
    shutil.copytree(TOY, tmp_path / "pair")
    base, inst = tmp_path / "pair" / "base", tmp_path / "pair" / "instruct"
    pid = _identify(f"model.base={base}", f"model.instruct={inst}", "strength=0.5")
    respelled = f"{tmp_path}/pair/base/../instruct"
    assert _identify(f"model.base={base}", f"model.instruct={respelled}", "strength=0.5") == pid
    assert _identify(f"model.base={base}", f"model.instruct={inst}", "strength=0.5000004") != pid
    state = load_file(inst / "model.safetensors")
    name = sorted(state)[0]
    state[name] = state[name] + 1e-3  # overwrite the checkpoint in place: same path, new contents
    save_file(state, inst / "model.safetensors", metadata={"format": "pt"})
    assert _identify(f"model.base={base}", f"model.instruct={inst}", "strength=0.5") != pid


def test_write_is_atomic_and_resume_ignores_torn_files(tmp_path):
    store = RecordStore(tmp_path)
    rec = make_record()
    pid = rec.point_id
    assert not store.done(pid)
    store.records.mkdir(parents=True)
    store.path(pid).write_text('{"point_id": "' + pid + '", "complete": tr')  # a torn write from elsewhere
    assert not store.done(pid)
    store.write(rec)
    assert store.done(pid)
    assert [r["point_id"] for r in store] == [pid]
    assert not list(store.records.glob(".*.tmp")), "no temporary file may stay behind"
    assert json.loads(store.path(pid).read_text())["complete"] is True


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x00garbage", b"[1, 2]", b'{"schema": 99, "complete": true}'])
def test_garbage_record_never_blocks_its_point(tmp_path, garbage):
    store = RecordStore(tmp_path)
    rec = make_record()
    store.records.mkdir(parents=True)
    store.path(rec.point_id).write_bytes(garbage)
    assert not store.done(rec.point_id)  # today: UnicodeDecodeError / AttributeError
    recs, bad = store.scan()
    assert recs == [] and [p for p, _ in bad] == [store.path(rec.point_id)]
    store.write(rec)  # what force=true (or a plain rerun) does: replaced
    assert store.done(rec.point_id) and read_record(store.path(rec.point_id)) == rec


def test_typed_record_round_trips_and_schema_1_is_read(tmp_path):
    rec = make_record()
    data = rec.to_json()
    assert data["schema"] == SCHEMA == 3 and data["summary"] == {"icl": 0.6, "if": 0.4}
    assert data["times"]["eval_icl_s"] == 1.0 and "eval_s" not in data["times"]  # schema 1's flat layout
    assert "judge" in data["metrics"]["if"] and "extra" not in data["metrics"]["if"]
    assert Record.from_json(json.loads(json.dumps(data))) == rec
    old = {**data, "schema": 1, "complete": True}
    old["seeds"] = {"seed": 1}
    assert Record.from_json(old).schema == 1
    assert Record.from_json({**data, "complete": True}).times.switch_s == pytest.approx(0.3)


def test_schema_3_carries_samples_hashes_and_flags_and_schema_2_still_reads():
    rec = make_record()
    rec.samples_sha256, rec.flags = {"t1": "ab" * 32}, ["all_generations_empty"]
    data = json.loads(json.dumps(rec.to_json()))
    assert data["samples_sha256"] == {"t1": "ab" * 32} and data["flags"] == ["all_generations_empty"]
    assert Record.from_json({**data, "complete": True}) == rec
    old = {k: v for k, v in data.items() if k not in ("samples_sha256", "flags")}
    two = Record.from_json({**old, "schema": 2, "complete": True})
    assert two.schema == 2 and two.samples_sha256 == {} and two.flags == []


def test_a_corrupt_record_is_kept_beside_and_named_in_one_line(tmp_path, caplog):
    """Issue 20 item 8: replacing an unreadable record says so and keeps it as ``*.corrupt``."""
    store = RecordStore(tmp_path)
    rec = make_record()
    store.records.mkdir(parents=True)
    store.path(rec.point_id).write_bytes(b'{"schema": 3, "point_id": "x", "compl')
    with caplog.at_level("WARNING"):
        store.write(rec)
    aside = store.path(rec.point_id).with_name(store.path(rec.point_id).name + ".corrupt")
    assert aside.read_bytes() == b'{"schema": 3, "point_id": "x", "compl' and store.done(rec.point_id)
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 1 and "is corrupt" in lines[0] and aside.name in lines[0] and "\n" not in lines[0]
    assert store.scan()[1] == [], "the kept file is not read as a record"
    store.path(rec.point_id).write_text("garbage")
    store.write(rec)  # a second corrupt file does not overwrite the first one kept
    assert aside.exists() and aside.with_name(aside.name + ".2").read_text() == "garbage"
    store.write(rec)  # a readable record is replaced, not set aside
    assert not aside.with_name(aside.name + ".3").exists()


def test_failure_entries_are_never_results(tmp_path):
    store = RecordStore(tmp_path)
    path = store.write_failure("p1", "NonFiniteError: checkpoint x, tensor 'w' is not finite", lam=0.5)
    assert path.parent.name == "failures"
    f = store.failure("p1")
    assert f.reason.startswith("NonFiniteError") and f.details == {"lam": 0.5}
    assert list(store) == [] and store.scan() == ([], []) and not store.done("p1")
    assert [x.point_id for x in store.failures()] == ["p1"]
    store.write(make_record(pid="p1"))  # the point later succeeds: its failure entry goes
    assert store.failure("p1") is None and store.done("p1")


# --- guards ----------------------------------------------------------------------------------------------------
@pytest.fixture
def nan_pair(tmp_path) -> tuple[Path, Path, str]:
    """The toy pair with one NaN planted in one instruct tensor."""
    shutil.copytree(TOY, tmp_path / "pair")
    inst = tmp_path / "pair" / "instruct"
    state = load_file(inst / "model.safetensors")
    name = "model.layers.1.mlp.down_proj.weight"
    state[name][3, 5] = float("nan")
    save_file(state, inst / "model.safetensors", metadata={"format": "pt"})
    return tmp_path / "pair" / "base", inst, name


def _plan(base: Path, inst: Path, **kw):
    from mergesweep.merge.plan import MergePlan
    from mergesweep.weights.checkpoints import Checkpoint

    return MergePlan(Checkpoint(base), [Checkpoint(inst)], progress=False, **kw)


def test_nan_input_fails_at_load_naming_checkpoint_and_tensor(nan_pair):
    base, inst, name = nan_pair
    with pytest.raises(NonFiniteError, match=rf"checkpoint {inst}, tensor '{name}' is not finite"):
        _plan(base, inst)


def test_nan_input_fails_every_streamed_point_even_lam0(nan_pair):
    from mergesweep.merge import get_method

    base, inst, name = nan_pair
    plan = _plan(base, inst, storage_device="disk")
    with pytest.raises(NonFiniteError, match=rf"{inst}, tensor '{name}'"):
        list(plan.build(get_method("linear"), 0.0, torch.float32))


def test_overflowing_strength_fails_naming_the_merged_tensor():
    from mergesweep.merge import get_method

    plan = _plan(TOY / "base", TOY / "instruct")
    assert len(list(plan.build(get_method("linear"), 1.5, torch.float32))) == len(plan.names)
    with pytest.raises(NonFiniteError, match=r"merged point \(linear, lam=1e\+30\): tensor '.+' is not finite"):
        list(plan.build(get_method("linear"), 1e30, torch.float32))


def test_nan_loglikelihoods_fail_a_part_and_only_empty_generations_flag_it():
    """Issue 20: all-empty generations at an extreme strength are a result (flagged), NaN stays a failure."""
    ll = [{"filtered_resps": [[-1.0, True], [-2.0, False]]}] * 3
    gen = [{"filtered_resps": ["an answer"]}, {"filtered_resps": [" "]}]
    assert check_part("icl", {"a": "multiple_choice", "b": "generate_until"}, {"a": ll, "b": gen}) == {}
    with pytest.raises(BrokenResults, match=r"task a: 1 of 4 samples have NaN log-likelihoods"):
        check_part("icl", {"a": "multiple_choice"}, {"a": ll + [{"filtered_resps": [[math.nan, False]]}]})
    empty = {"b": [{"filtered_resps": [""]}, {"filtered_resps": ["\n"]}]}
    assert check_part("if", {"b": "generate_until"}, empty) == {"b": "all_generations_empty"}


def test_redact_hides_keys_and_token_like_values():
    cfg = {
        "judge": {"api_key": "sk-abcdefghijklmnopqrstuvwx", "base_url": "http://127.0.0.1:8000/v1"},
        "tokenizer": "keep/me",
        "env": ["hf_ABCDEFGHIJKLMNOPQRSTUVWX"],
        "HF_TOKEN": "abc",
    }
    out = redact(cfg)
    assert out["judge"]["api_key"] == REDACTED and out["HF_TOKEN"] == REDACTED
    assert out["env"] == [REDACTED]
    assert out["judge"]["base_url"] == cfg["judge"]["base_url"] and out["tokenizer"] == "keep/me"
    assert "sk-abc" not in json.dumps(out)
