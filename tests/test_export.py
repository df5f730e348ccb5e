"""Export of one sweep point as a plain HF checkpoint, reloaded with transformers."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mergesweep.tools.export import export_point, main

TEMPLATE = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MERGESWEEP_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("export_pair")
    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=128,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    base, inst = root / "base", root / "instruct"
    model.save_pretrained(base)
    inst.mkdir()
    shutil.copy(base / "config.json", inst / "config.json")
    g = torch.Generator().manual_seed(1)
    sd = {k: v + 0.02 * torch.randn(v.shape, generator=g) for k, v in load_file(base / "model.safetensors").items()}
    save_file(sd, inst / "model.safetensors")
    vocab = {f"w{i}": i for i in range(128)}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="w0")),
        unk_token="w0",
        eos_token="w1",
        pad_token="w2",
    )
    tok._tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.chat_template = TEMPLATE
    tok.save_pretrained(inst)
    GenerationConfig(eos_token_id=1, do_sample=False).save_pretrained(inst)
    return {"base": base, "instruct": inst, "cfg": {"base": str(base), "instruct": str(inst)}}


def _reference_logits(p: dict, lam: float, ids: torch.Tensor) -> torch.Tensor:
    """transformers forward of base + lam * (instruct - base), built here without mergesweep."""
    from transformers import AutoModelForCausalLM

    b, i = load_file(p["base"] / "model.safetensors"), load_file(p["instruct"] / "model.safetensors")
    model = AutoModelForCausalLM.from_pretrained(p["base"], dtype=torch.float32)
    missing, unexpected = model.load_state_dict({k: b[k] + lam * (i[k] - b[k]) for k in b}, strict=False)
    assert not unexpected and not missing
    with torch.no_grad():
        return model(input_ids=ids).logits


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_reloads_with_transformers(pair, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = export_point(pair["cfg"], {"name": "linear", "knobs": {}}, 0.5, tmp_path / "merged")
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(3))
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    with torch.no_grad():
        got = model(input_ids=ids).logits
    torch.testing.assert_close(got, _reference_logits(pair, 0.5, ids), atol=1e-5, rtol=0)
    assert not torch.allclose(got, _reference_logits(pair, 0.0, ids), atol=1e-3)  # the test can fail

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["torch_dtype"] == "float32" and cfg["architectures"] == ["LlamaForCausalLM"]
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (out / f).read_bytes() == (pair["instruct"] / f).read_bytes(), f
    assert AutoTokenizer.from_pretrained(out).chat_template == TEMPLATE
    point = json.loads((out / "mergesweep_point.json").read_text())
    assert point["method"] == "linear" and point["lam"] == 0.5 and point["extrapolation"] is False
    assert point["source_sha256"][str(pair["base"])]["model.safetensors"] == _sha(pair["base"] / "model.safetensors")
    assert point["source_sha256"][str(pair["instruct"])]["config.json"] == _sha(pair["instruct"] / "config.json")


def test_export_sharded_bf16_matches_single(pair, tmp_path):
    one = export_point(pair["cfg"], {"name": "linear"}, 1.25, tmp_path / "one", dtype="bfloat16")
    many = export_point(
        pair["cfg"], {"name": "linear"}, 1.25, tmp_path / "many", dtype="bfloat16", max_shard_bytes=40_000
    )
    index = json.loads((many / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 1 and not (many / "model.safetensors").exists()
    a = load_file(one / "model.safetensors")
    b = {k: v for f in files for k, v in load_file(many / f).items()}
    assert set(a) == set(b) and all(a[k].dtype == torch.bfloat16 and torch.equal(a[k], b[k]) for k in a)
    assert json.loads((one / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert json.loads((one / "mergesweep_point.json").read_text())["extrapolation"] is True


def test_cli_knobs(pair, tmp_path):
    main(
        [
            "--base",
            str(pair["base"]),
            "--instruct",
            str(pair["instruct"]),
            "--method",
            "ties",
            "--lam",
            "0.7",
            "--knob",
            "density=0.5",
            "--out",
            str(tmp_path / "cli"),
        ]
    )
    point = json.loads((tmp_path / "cli" / "mergesweep_point.json").read_text())
    assert point["method"] == "ties" and point["knobs"] == {"density": 0.5}
    b = load_file(pair["base"] / "model.safetensors")
    i = load_file(pair["instruct"] / "model.safetensors")
    got = load_file(tmp_path / "cli" / "model.safetensors")
    for k in b:  # TIES with one task vector: base + lam * (the floor(density * n) largest-|tau| entries of tau)
        tau = (i[k].float() - b[k].float()).reshape(-1)
        keep = torch.zeros_like(tau, dtype=torch.bool)
        keep[torch.topk(tau.abs(), int(0.5 * tau.numel())).indices] = True
        want = (b[k].float().reshape(-1) + 0.7 * torch.where(keep, tau, 0.0)).reshape(b[k].shape)
        torch.testing.assert_close(got[k].float(), want, atol=1e-6, rtol=0, msg=lambda m, k=k: f"{k}: {m}")
    with pytest.raises(SystemExit):
        main(["--instruct", str(pair["instruct"]), "--lam", "1", "--out", str(tmp_path / "x"), "--knob", "oops"])


# --- bad input: one clear line, nothing already written damaged (issue 10) ---------------------------------------


def _tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path (what must stay untouched)."""
    return {str(p.relative_to(root)): _sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _left(root: Path) -> list[str]:
    """What a test's folder holds besides the hash cache."""
    return sorted(p.name for p in root.iterdir() if p.name != "cache")


def _cli(pair, out, *extra: str) -> list[str]:
    return ["--base", str(pair["base"]), "--instruct", str(pair["instruct"]), "--out", str(out), *extra]


def _fails(argv: list[str], match: str) -> str:
    """``main(argv)`` exits with one line naming the problem."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    msg = str(e.value.code)
    assert msg.startswith("mergesweep-export: error:") and "\n" not in msg and match in msg, msg
    return msg


@pytest.mark.parametrize("where", ["instruct", "inside_base", "around_both"])
def test_out_on_a_source_is_refused_and_the_source_untouched(pair, where):
    out = {"instruct": pair["instruct"], "inside_base": pair["base"] / "merged", "around_both": pair["base"].parent}[
        where
    ]
    before = {k: _tree(pair[k]) for k in ("base", "instruct")}
    _fails(_cli(pair, out, "--lam", "0.5"), "source checkpoint")
    assert {k: _tree(pair[k]) for k in ("base", "instruct")} == before
    assert not (pair["base"] / "merged").exists()


@pytest.mark.parametrize(
    "bad, match",
    [
        (["--method", "ties", "--knob", "density=1.5"], "density must be in [0, 1]"),
        (["--method", "ties", "--knob", "density=abc"], "density must be a number"),
        (["--method", "lines", "--knob", "alpha=abc"], "alpha must be a number"),
        (["--lam", "nan"], "--lam must be finite"),
        (["--lam", "inf"], "--lam must be finite"),
        (["--dtype", "int8"], "float dtype"),
    ],
)
def test_failed_reexport_keeps_the_earlier_export(pair, tmp_path, bad, match):
    out = tmp_path / "merged"
    main(_cli(pair, out, "--lam", "0.25"))
    before = _tree(out)
    argv = _cli(pair, out, *bad) + ([] if "--lam" in bad else ["--lam", "0.75"])
    _fails(argv, match)
    assert _tree(out) == before, "the earlier export was changed by a failed one"
    assert _left(tmp_path) == ["merged"], "temporary folders left behind"


def test_failed_export_to_a_new_folder_leaves_nothing(pair, tmp_path):
    _fails(_cli(pair, tmp_path / "a" / "b" / "merged", "--lam", "nan"), "finite")
    _fails(_cli(pair, tmp_path / "merged", "--lam", "1", "--method", "ties", "--knob", "density=1.5"), "density")
    assert _left(tmp_path) == []


def test_full_disk_midway_keeps_the_earlier_export(pair, tmp_path, monkeypatch):
    import errno

    import mergesweep.tools.export as export

    out = tmp_path / "merged"
    export_point(pair["cfg"], {"name": "linear"}, 0.25, out, max_shard_bytes=40_000)
    before = _tree(out)
    calls = []

    def full(tensors, path, metadata=None):
        calls.append(path)
        Path(path).write_bytes(b"\0" * 1000)  # part of the shard made it to disk
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(export, "save_file", full)
    _fails(_cli(pair, out, "--lam", "0.75"), "No space left on device")
    assert len(calls) == 1 and _tree(out) == before
    assert _left(tmp_path) == ["merged"]


def test_reexport_replaces_the_earlier_one_whole(pair, tmp_path):
    out = tmp_path / "merged"
    export_point(pair["cfg"], {"name": "linear"}, 0.25, out, max_shard_bytes=40_000)
    assert (out / "model.safetensors.index.json").is_file()
    export_point(pair["cfg"], {"name": "linear"}, 0.75, out)  # one shard now: the old shards must be gone
    assert sorted(p.name for p in out.glob("model*")) == ["model.safetensors"]
    point = json.loads((out / "mergesweep_point.json").read_text())
    assert point["lam"] == 0.75 and point["shards"] == ["model.safetensors"]
    b, i = load_file(pair["base"] / "model.safetensors"), load_file(pair["instruct"] / "model.safetensors")
    k = "model.layers.0.mlp.up_proj.weight"
    torch.testing.assert_close(load_file(out / "model.safetensors")[k], b[k] + 0.75 * (i[k] - b[k]))
    assert _left(tmp_path) == ["merged"]


def test_foreign_folder_is_never_replaced(pair, tmp_path):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("keep me")
    _fails(_cli(pair, mine, "--lam", "0.5"), "not an earlier export")
    assert (mine / "todo.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1


def test_debug_shows_the_traceback_and_the_process_prints_one_line(pair, tmp_path):
    import os
    import subprocess
    import sys

    from mergesweep.errors import ConfigError

    with pytest.raises(ConfigError):
        main(_cli(pair, tmp_path / "m", "--lam", "nan", "--debug"))
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run(
        [sys.executable, "-m", "mergesweep.tools.export", *_cli(pair, pair["instruct"], "--lam", "1")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr  # before any progress bar
    assert proc.stderr.startswith("mergesweep-export: error: --out")
