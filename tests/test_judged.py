"""Judged (AlpacaEval-style) evaluation: win metrics, position-bias control, judge agreement, dead judges.

HTTP judges are exercised against a real OpenAI-compatible stub server on 127.0.0.1 (deterministic judges:
"prefers the longer answer", "always picks the second slot", or garbage replies), and against a closed port.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from lm_eval.api.model import LM
from omegaconf import OmegaConf

import mergesweep.app.cli  # noqa: F401  (registers the ${ms_data:} resolver the toy configs use)
from mergesweep.app.points import container
from mergesweep.engines.spec import VLLMEngineSpec
from mergesweep.evals import judges
from mergesweep.evals import suite as suites
from mergesweep.evals.data import read_jsonl
from mergesweep.evals.spec import suite_spec
from mergesweep.paths import conf_dir, data_dir
from tests.composing import composed

ALPACA = data_dir() / "alpaca_eval"


class StubJudge(BaseHTTPRequestHandler):
    """``/v1/models`` and ``/v1/chat/completions`` like vLLM's server, with the judge behaviour in ``server.mode``."""

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(200, json.dumps({"data": [{"id": "stub-judge"}]}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append({"body": body, "auth": self.headers.get("Authorization")})
        if self.server.mode == "garbage":
            return self._send(200, b"<html>upstream proxy error</html>")
        if self.server.mode == "refuse":
            return self._send(400, b'{"error": "unknown model stub-judge"}')
        if self.server.mode == "throttle" and len(self.server.seen) <= self.server.fail_first:
            return self._send(429, b'{"error": "slow down"}')
        if self.server.mode == "no_logprobs":
            self.server.last_reply = {"choices": [{"message": {"role": "assistant", "content": self.server.text}}]}
            return self._send(200, json.dumps(self.server.last_reply).encode())
        text = body["messages"][-1]["content"]
        first, second = re.findall(r'"output": """(.*?)"""', text, re.S)
        if self.server.mode == "second":
            lp_m, lp_M = math.log(0.05), math.log(0.95)
        else:  # prefers the longer answer
            p = 1 / (1 + math.exp(-(len(second) - len(first)) / 200))
            lp_m, lp_M = math.log(max(1 - p, 1e-9)), math.log(max(p, 1e-9))
        tops = [{"token": "m", "logprob": lp_m}, {"token": "M", "logprob": lp_M}]
        reply = {
            "choices": [
                {
                    "message": {"role": "assistant", "content": "M" if lp_M > lp_m else "m"},
                    "logprobs": {"content": [{"token": "M", "logprob": lp_M, "top_logprobs": tops}]},
                }
            ]
        }
        self._send(200, json.dumps(reply).encode())


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubJudge)
    server.mode, server.seen = "length", []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def judge_part(**kw) -> dict:
    return {
        "tasks": ["alpaca_eval_local"],
        "metric": "win",
        "judge": {"kind": "openai", "model": "stub-judge", "retries": 2, "timeout_s": 5, **kw},
    }


def test_win_rate_is_alpaca_evals_and_lc_offline_tracks_it():
    n = 200
    lens_ref = [300 + (i * 37) % 400 for i in range(n)]
    lens_mod = [300 + (i * 53) % 400 for i in range(n)]
    wins = [0.8 if i % 3 else 0.3 for i in range(n)]  # unrelated to length
    m = judges.win_metrics(wins, lens_ref, lens_mod)
    assert m["win_rate"] == pytest.approx(100 * sum(wins) / n) and m["win"] == pytest.approx(sum(wins) / n)
    assert abs(m["lc_win_rate_offline_minimal"] - m["win_rate"]) < 5 and not m["lc_extreme_change"]
    by_length = [0.95 if b > a else 0.05 for a, b in zip(lens_ref, lens_mod)]  # the judge only rewards length
    longer = [b + 200 for b in lens_mod]
    m2 = judges.win_metrics([0.95 if b > a else 0.05 for a, b in zip(lens_ref, longer)], lens_ref, longer)
    assert m2["win_rate"] > 80 and m2["lc_win_rate_offline_minimal"] < m2["win_rate"] - 20
    assert "lc_win_rate_offline_minimal" in judges.win_metrics(by_length, lens_ref, lens_mod)
    few = judges.win_metrics([1.0, 0.0, 1.0], [1, 2, 3], [3, 2, 1])
    assert "lc_win_rate_offline_minimal" not in few and "need 10" in few["lc_offline_error"]


def test_shipped_gpt4_turbo_annotations_give_davinci003s_win_rate():
    rows = read_jsonl(ALPACA / judges.ANNOTATIONS)
    gpt4, dav = (json.loads((ALPACA / f).read_text()) for f in judges.OUTPUTS)
    wins = [float(r["preference"]) - 1 for r in rows]
    m = judges.win_metrics(wins, [len(x["output"]) for x in gpt4], [len(x["output"]) for x in dav])
    assert len(rows) == 805 and m["win_rate"] == pytest.approx(1.9621, abs=1e-3)
    assert m["win_rate"] < m["lc_win_rate_offline_minimal"] < 20  # davinci-003 answers are shorter: LC lifts it


def test_agreement_of_a_length_judge_with_gpt4_turbo(stub):
    s = judges.judge_spec(judge_part(base_url=stub.url, order="both")).validate()
    a = judges.agreement(s, limit=60, seed=0)
    assert a["n"] == 60 and len(stub.seen) == 120  # both orders
    assert a["agreement"] > 0.8 and a["judge_win_rate_davinci003"] < 30 and a["gpt4_turbo_win_rate_davinci003"] < 10
    assert judges.agreement(s, limit=60, seed=0) is a  # cached per judge: not re-run at every sweep point


def test_position_bias_is_controlled(stub):
    stub.mode = "second"
    items = [(i, f"q{i}", "reference answer", "model answer") for i in range(40)]
    both = judges.preferences(
        judges.get_judge(judges.judge_spec(judge_part(base_url=stub.url)).validate()),
        judges.judge_spec(judge_part(base_url=stub.url)).validate(),
        items,
        seed=0,
    )
    assert all(p["win"] == pytest.approx(0.5) for p in both)  # a pure slot-2 judge cancels out
    assert judges.second_slot_bias(both) == pytest.approx(0.9)
    s = judges.judge_spec(judge_part(base_url=stub.url, order="random")).validate()
    r1, r2 = (judges.preferences(judges.get_judge(s), s, items, seed=0) for _ in range(2))
    r3 = judges.preferences(judges.get_judge(s), s, items, seed=1)
    assert r1 == r2 and r1 != r3
    swapped = ["p_swapped" in p for p in r1]
    assert 10 < sum(swapped) < 30
    assert all(p["win"] == pytest.approx(0.05 if sw else 0.95) for p, sw in zip(r1, swapped))


def test_garbage_replies_fail_after_bounded_retries(stub):
    stub.mode = "garbage"
    s = judges.judge_spec(judge_part(base_url=stub.url, retries=3, concurrency=2)).validate()
    items = [(i, "q", "a", "b") for i in range(50)]
    with pytest.raises(judges.JudgeError, match=rf"{re.escape(stub.url)}/chat/completions failed 3 time\(s\)"):
        judges.preferences(judges.get_judge(s), s, items, seed=0)
    assert 3 <= len(stub.seen) <= 2 * 3  # calls in flight finish their retries; the other 98 never reach the server


def test_refused_request_is_not_retried(stub):
    """A 4xx other than 429 means the request itself is wrong: one call, no retries, the server's reason shown."""
    stub.mode = "refuse"
    s = judges.judge_spec(judge_part(base_url=stub.url, retries=5, concurrency=1)).validate()
    with pytest.raises(judges.JudgeError, match=r"refused the request: HTTP 400: .*unknown model"):
        judges.preferences(judges.get_judge(s), s, [(0, "q", "a", "b")], seed=0)
    assert len(stub.seen) == 1


def test_throttled_request_is_retried_then_answered(stub):
    """429 is retried (bounded); the answer after it counts as usual."""
    stub.mode, stub.fail_first = "throttle", 2
    s = judges.judge_spec(judge_part(base_url=stub.url, retries=3, order="random")).validate()
    (p,) = judges.preferences(judges.get_judge(s), s, [(0, "q", "a", "bb")], seed=0)
    assert len(stub.seen) == 3 and p["win"] == pytest.approx(1 / (1 + math.exp(-1 / 200)))


@pytest.mark.parametrize(("text", "p"), [("M", 1.0), ("m", 0.0), ("maybe", 0.5)])
def test_endpoint_without_logprobs_is_read_from_the_answer(stub, text, p):
    """No logprobs in the reply: the identifier the judge wrote decides (0 or 1), anything else is a tie."""
    stub.mode, stub.text = "no_logprobs", text
    s = judges.judge_spec(judge_part(base_url=stub.url, order="both")).validate()
    (pref,) = judges.preferences(judges.get_judge(s), s, [(0, "q", "a", "b")], seed=0)
    assert pref["p_forward"] == p and pref["p_swapped"] == p and pref["win"] == 0.5
    assert "logprobs" not in json.dumps(stub.last_reply)


def test_closed_endpoint_fails_in_preflight():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(judges.JudgeError, match=r"/models failed 2 time\(s\); last error: URLError"):
        suites.validate({"name": "t", "parts": {"if": judge_part(base_url=url)}})


def test_remote_endpoints_and_keys(stub, monkeypatch):
    with pytest.raises(judges.JudgeError, match="not a loopback address"):
        judges.judge_spec(judge_part(base_url="http://10.0.0.7:8000/v1")).validate()
    judges.judge_spec(judge_part(base_url="http://10.0.0.7:8000/v1", allow_remote=True)).validate()
    with pytest.raises(judges.JudgeError, match=r"\$MS_TEST_JUDGE_KEY, which is not set"):
        judges.judge_spec(judge_part(base_url=stub.url, api_key_env="MS_TEST_JUDGE_KEY")).validate()
    monkeypatch.setenv("MS_TEST_JUDGE_KEY", "sk-secret-123")
    s = judges.judge_spec(judge_part(base_url=stub.url, api_key_env="MS_TEST_JUDGE_KEY")).validate()
    judges.preferences(judges.get_judge(s), s, [(0, "q", "a", "bb")], seed=0)
    assert stub.seen[0]["auth"] == "Bearer sk-secret-123"
    assert "sk-secret" not in json.dumps(judges.identity(s))
    assert judges.identity(s)["api_key_env"] == "MS_TEST_JUDGE_KEY"
    with pytest.raises(judges.JudgeError, match=r"unknown setting\(s\) \['api_key'\]; known: \['agreement_limit', "):
        judges.judge_spec(judge_part(api_key="sk-inline"))


# The defaults ``settings.DEFAULTS`` held before ``JudgeSpec`` (written here once more to pin them: a judge block
# that leaves a key out must judge exactly as it did).
OLD_DEFAULTS = {
    "kind": "openai", "model": None, "base_url": "http://127.0.0.1:8000/v1", "api_key_env": None,
    "allow_remote": False, "prompt": "alpaca_eval_clf_gpt4_turbo", "tokens": ["m", "M"], "order": "both",
    "reference": "gpt4_1106_preview", "timeout_s": 60, "retries": 3, "concurrency": 4, "agreement_limit": 0,
    "dtype": "float32", "device": None,
}  # fmt: skip


def test_judge_spec_defaults_are_the_old_ones_and_a_block_is_its_values():
    assert dataclasses.asdict(judges.JudgeSpec()) == OLD_DEFAULTS
    assert judges.judge_spec({"tasks": ["t"]}) == judges.JudgeSpec()  # a part without a judge: the defaults
    s = judges.judge_spec(judge_part(order="random", tokens=["A", "B"]))
    assert (s.kind, s.model, s.order, s.tokens, s.retries, s.timeout_s, s.concurrency) == (
        "openai", "stub-judge", "random", ["A", "B"], 2, 5, 4,
    )  # fmt: skip
    assert judges.judge_spec(s) is s


def test_shipped_judge_blocks_are_judge_specs_recorded_as_given():
    """Each shipped judge block reads as a ``JudgeSpec`` and validates; the composed config (what records and point
    ids are made of) keeps the block as the YAML gave it, not the spec's 15 keys (``judges/spec.py`` says why)."""
    for suite, overrides in (("toy_judged", ()), ("alpaca_judged", ("judge_model=some-judge",))):
        cfg = composed(f"suite={suite}", *overrides)
        given = yaml.safe_load((conf_dir() / "suite" / f"{suite}.yaml").read_text())["parts"]["if"]["judge"]
        recorded = container(cfg)["suite"]["parts"]["if"]["judge"]
        assert list(recorded) == list(given), suite
        spec = judges.judge_spec(suite_spec(cfg.suite).parts["if"]).validate()
        assert all(getattr(spec, k) == v for k, v in recorded.items()), suite


def test_an_unknown_judge_key_is_one_line_naming_the_known_ones():
    """A key ``JudgeSpec`` does not have (``+`` adds it past Hydra) stops the preflight in one line."""
    part = suite_spec(composed("suite=toy_judged", "+suite.parts.if.judge.temprature=0").suite).parts["if"]
    with pytest.raises(judges.JudgeError) as e:
        judges.check_part(part)
    known = sorted(f.name for f in dataclasses.fields(judges.JudgeSpec))
    assert str(e.value) == f"judge: unknown setting(s) ['temprature']; known: {known}"


class EchoLM(LM):
    """Answers every instruction with a fixed text (generation is not what these tests check)."""

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm: bool = False):
        return [f"Here is a note. {r.args[0][-40:]}" for r in requests]

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in chat_history) + "<|assistant|>\n"

    @property
    def tokenizer_name(self) -> str:
        return "echo"


@functools.cache
def _toy_instruct():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = data_dir() / "toy_pair" / "instruct"
    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def toy_judge_p_second(instruction: str, output_1: str, output_2: str) -> float:
    """P("M") among {"m", "M"} after the toy judge prompt, from a transformers forward of the toy instruct model."""
    import torch

    tok, model = _toy_instruct()
    user = (
        f"Which answer is better?\nInstruction: {instruction}\nAnswer m: {output_1}\nAnswer M: {output_2}\n"
        "Reply with m or M."
    )
    ctx = tok.encode(
        tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True),
        add_special_tokens=False,
    )
    lp = []
    for ident in ("m", "M"):
        cont = tok.encode(ident, add_special_tokens=False)
        with torch.no_grad():
            logits = model(torch.tensor([ctx + cont])).logits[0].double().log_softmax(-1)
        lp.append(sum(float(logits[len(ctx) - 1 + j, t]) for j, t in enumerate(cont)))
    return math.exp(lp[1]) / (math.exp(lp[0]) + math.exp(lp[1]))


def toy_judged_suite() -> dict:
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["suite=toy_judged"])
    return OmegaConf.to_container(cfg.suite, resolve=True)


def test_toy_judged_suite_records_wins_judge_and_warning(tmp_path):
    suite = toy_judged_suite()
    assert suite["parts"]["if"]["judge"]["model"].endswith("toy_pair/instruct")
    suites.validate(suite)
    out = suites.run(EchoLM(), suite, tmp_path, seed=3, bootstrap=100)
    part = out.parts["if"]
    rows = [json.loads(line) for line in Path(out.samples["toy_judged"]).read_text().splitlines()]
    assert len(rows) == 20 and all({"p_forward", "p_swapped"} <= set(r["judge"]) for r in rows)
    for r in rows:  # win averages both orders: P(answer in slot 2 wins) and 1 - P(reference in slot 2 wins)
        assert r["win"] == pytest.approx((r["judge"]["p_forward"] + 1 - r["judge"]["p_swapped"]) / 2, abs=1e-12)
    for r in rows[:3]:  # the judge's probabilities, recomputed with plain transformers
        answer = r["resps"][0][0]
        assert r["judge"]["p_forward"] == pytest.approx(
            toy_judge_p_second(r["doc"]["instruction"], r["doc"]["ref_toy"], answer), abs=1e-5
        )
        assert r["judge"]["p_swapped"] == pytest.approx(
            toy_judge_p_second(r["doc"]["instruction"], answer, r["doc"]["ref_toy"]), abs=1e-5
        )
    assert out.summary["if"] == pytest.approx(sum(r["win"] for r in rows) / 20)
    assert part["tasks"]["toy_judged"]["win_rate"] == pytest.approx(100 * out.summary["if"])
    bias = sum(r["judge"]["p_forward"] + r["judge"]["p_swapped"] - 1 for r in rows) / 20
    assert part["tasks"]["toy_judged"]["second_slot_bias"] == pytest.approx(bias, abs=1e-12)
    info = part["judge"]
    assert info["judge"]["kind"] == "hf" and info["judge"]["leaderboard_comparable"] is False
    assert "not leaderboard-comparable" in info["warning"] and "NOT the leaderboard" in info["lc_variant"]
    lc = part["tasks"]["toy_judged"].get("lc_win_rate_offline_minimal")
    assert lc is not None or info["tasks"]["toy_judged"]["lc_offline_error"]
    again = suites.run(EchoLM(), suite, tmp_path / "again", seed=3, bootstrap=100)
    assert again.summary == out.summary  # deterministic judge, recorded seed


def test_unknown_reference_is_named(tmp_path):
    suite = toy_judged_suite()
    suite["parts"]["if"]["judge"]["reference"] = "gpt4_1106_preview"
    suite["parts"]["if"]["limit"] = 2
    with pytest.raises(judges.JudgeError, match=r"task 'toy_judged' has reference sets \['toy'\]"):
        suites.run(EchoLM(), suite, tmp_path, seed=0, bootstrap=0)


def test_cli_with_a_dead_judge_prints_one_line_and_writes_nothing(tmp_path):
    env = {**os.environ, "MERGESWEEP_RESULTS": str(tmp_path)}
    url = f"http://127.0.0.1:{closed_port()}/v1"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mergesweep.app.cli",
            "suite=alpaca_judged",
            "tracking=none",
            "suite.parts.if.judge.model=some-judge",
            f"suite.parts.if.judge.base_url={url}",
            "suite.parts.if.judge.retries=2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode != 0
    assert f"mergesweep: error: judge endpoint {url}/models failed 2 time(s)" in proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.rglob("records/*.json"))


@pytest.mark.slow
def test_toy_judged_sweep_through_vllm_and_compare(tmp_path):
    """The judged path for real: vLLM generates (via lm-eval), the toy instruct model judges, records compare."""
    from mergesweep.evals.compare import compare

    env = {**os.environ, "MERGESWEEP_RESULTS": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mergesweep.app.cli",
            "-m",
            "suite=toy_judged",
            "strength=0,1",
            "tracking=none",
            "sweep.name=judged",
            "bootstrap=200",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    paths = sorted((tmp_path / "judged" / "records").glob("*.json"))
    recs = [json.loads(p.read_text()) for p in paths]
    assert len(recs) == 2
    for rec in recs:
        part = rec["metrics"]["if"]
        rows = [json.loads(x) for x in (tmp_path / "judged" / rec["samples"]["toy_judged"]).read_text().splitlines()]
        assert len(rows) == 20 and rec["summary"]["icl"] is None
        assert part["metric"] == "win" and rec["summary"]["if"] == pytest.approx(sum(r["win"] for r in rows) / 20)
        assert part["judge"]["judge"]["kind"] == "hf" and "not leaderboard-comparable" in part["judge"]["warning"]
        assert part["tasks"]["toy_judged"]["win_rate"] == pytest.approx(100 * rec["summary"]["if"])
        assert rec["engine"]["engine"] == "vllm"
    res = compare(paths[0], paths[1], "if", n_resamples=500)
    assert res["metric"] == "win" and res["tasks"]["toy_judged"]["n"] == 20 and 0 <= res["p_value"] <= 1


def test_reward_model_judge_is_bradley_terry_over_its_scores(tmp_path):
    """kind=reward: P(answer beats reference) = sigmoid(r(answer) - r(reference)), computed here independently."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForSequenceClassification

    tok = AutoTokenizer.from_pretrained(data_dir() / "toy_pair" / "instruct")
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    rm = Qwen2ForSequenceClassification(cfg).eval()
    rm.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    s = judges.judge_spec(judge_part(kind="reward", model=str(tmp_path / "rm"), order="both")).validate()
    items = [(i, f"Tell me about item {i}.", f"Reference answer {i}.", f"Model answer {'x' * i}.") for i in range(4)]
    prefs = judges.preferences(judges.get_judge(s), s, items, seed=0)

    def r(instr: str, ans: str) -> float:
        text = tok.apply_chat_template(
            [{"role": "user", "content": instr}, {"role": "assistant", "content": ans}], tokenize=False
        )
        with torch.no_grad():
            return float(rm(torch.tensor([tok.encode(text)])).logits[0, 0])

    for (_, instr, ref, ans), p in zip(items, prefs):
        assert p["win"] == pytest.approx(1 / (1 + math.exp(-(r(instr, ans) - r(instr, ref)))), abs=1e-5)
    assert judges.second_slot_bias(prefs) == pytest.approx(0.0, abs=1e-6), "a reward model has no position bias"
    assert judges.identity(s)["leaderboard_comparable"] is False


def test_a_cached_judge_answers_only_for_its_own_settings():
    """Judges are cached per process; one built for one prompt template must not serve another (it did: the key
    held only the model's settings, so a later suite on the same model was judged with the first one's prompt)."""
    model = str(data_dir() / "toy_pair" / "instruct")
    toy = judges.judge_spec(judge_part(kind="hf", model=model, prompt="toy")).validate()
    clf = judges.judge_spec(judge_part(kind="hf", model=model, prompt="alpaca_eval_clf_gpt4_turbo")).validate()
    assert judges.get_judge(toy) is judges.get_judge(dataclasses.replace(toy))
    assert judges.get_judge(clf) is not judges.get_judge(toy)
    assert judges.get_judge(clf).s.prompt == "alpaca_eval_clf_gpt4_turbo"


@pytest.mark.slow
def test_in_process_vllm_judge_agrees_with_the_transformers_judge_beside_a_running_engine():
    """kind=vllm (batched, in this process next to the sweep's own engine) == kind=hf on the same prompts."""
    from mergesweep.engines.vllm_engine import VLLMEngine

    model = str(data_dir() / "toy_pair" / "instruct")
    engine = VLLMEngine(model, VLLMEngineSpec(dtype="float32", max_model_len=512))
    try:
        rows = read_jsonl(data_dir() / "alpaca_eval" / "toy_judged.jsonl")[:4]
        items = [
            (i, r["instruction"], r["reference"], f"Some answer about {r['instruction'][:20]}")
            for i, r in enumerate(rows)
        ]
        got = {}
        for kind in ("vllm", "hf"):
            s = judges.judge_spec(judge_part(kind=kind, model=model, prompt="toy", order="both")).validate()
            got[kind] = judges.preferences(judges.get_judge(s), s, items, seed=0)
        for a, b in zip(got["vllm"], got["hf"]):
            assert a["p_forward"] == pytest.approx(b["p_forward"], abs=1e-3)
            assert a["p_swapped"] == pytest.approx(b["p_swapped"], abs=1e-3)
        assert engine.llm.generate(["ok"], use_tqdm=False)[0].outputs, "the sweep engine still serves"
    finally:
        engine.close()
