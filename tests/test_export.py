"""Export of one sweep point as a plain HF checkpoint, reloaded with transformers."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mergesweep.export import export_point, main

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
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, vocab_size=128, max_position_embeddings=64, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    base, inst = root / "base", root / "instruct"
    model.save_pretrained(base)
    inst.mkdir()
    shutil.copy(base / "config.json", inst / "config.json")
    g = torch.Generator().manual_seed(1)
    sd = {k: v + 0.02 * torch.randn(v.shape, generator=g) for k, v in load_file(base / "model.safetensors").items()}
    save_file(sd, inst / "model.safetensors")
    vocab = {f"w{i}": i for i in range(128)}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="w0")),
                                  unk_token="w0", eos_token="w1", pad_token="w2")
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
    many = export_point(pair["cfg"], {"name": "linear"}, 1.25, tmp_path / "many", dtype="bfloat16",
                        max_shard_bytes=40_000)
    index = json.loads((many / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 1 and not (many / "model.safetensors").exists()
    a = load_file(one / "model.safetensors")
    b = {k: v for f in files for k, v in load_file(many / f).items()}
    assert set(a) == set(b) and all(a[k].dtype == torch.bfloat16 and torch.equal(a[k], b[k]) for k in a)
    assert json.loads((one / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert json.loads((one / "mergesweep_point.json").read_text())["extrapolation"] is True


def test_cli_knobs(pair, tmp_path):
    main(["--base", str(pair["base"]), "--instruct", str(pair["instruct"]), "--method", "ties", "--lam", "0.7",
          "--knob", "density=0.5", "--out", str(tmp_path / "cli")])
    point = json.loads((tmp_path / "cli" / "mergesweep_point.json").read_text())
    assert point["method"] == "ties" and point["knobs"] == {"density": 0.5}
    b = load_file(pair["base"] / "model.safetensors")
    got = load_file(tmp_path / "cli" / "model.safetensors")
    k = "model.layers.0.mlp.up_proj.weight"
    changed = (got[k] != b[k]).float().mean().item()
    assert 0.45 < changed < 0.55  # density 0.5 of the task vector kept
    with pytest.raises(SystemExit):
        main(["--instruct", str(pair["instruct"]), "--lam", "1", "--out", str(tmp_path / "x"), "--knob", "oops"])
