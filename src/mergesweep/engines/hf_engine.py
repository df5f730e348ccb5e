"""The Hugging Face (transformers) engine, for machines without vLLM and as an independent reference.

Same contract as the vLLM engine: one model per family, points copied into its parameters in place. lm-eval
sees it through lm-eval's own ``HFLM`` built around the live model object, so scoring is lm-eval's code.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import torch

from ..merge import get_method
from ..merge.sources import build_plan
from .base import Engine
from .lengths import engine_len
from .param_views import ParamViews
from .spec import HFEngineSpec

if TYPE_CHECKING:
    from lm_eval.models.huggingface import HFLM

log = logging.getLogger(__name__)


def _attention_for(model_dir: str, requested: str | None) -> str | None:
    """``eager`` for models with attention-logit soft-capping (Gemma2): transformers' default ``sdpa`` drops the
    cap without a word (logprobs off by 0.3 on a tiny Gemma2, measured); otherwise the caller's choice or default."""
    import json
    from pathlib import Path

    if requested:
        return requested
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    if (cfg.get("text_config") or cfg).get("attn_logit_softcapping"):
        log.warning("%s uses attention soft-capping: transformers engine runs eager attention", model_dir)
        return "eager"
    return None


class HFEngine(Engine):
    """A transformers causal LM on ``device`` whose parameters are overwritten per point."""

    name = "hf"

    def __init__(self, model_dir: str, spec: HFEngineSpec, seed: int = 0) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec, self.model_dir = spec.validate(), model_dir
        self.device = spec.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = spec.dtype
        self.attn = _attention_for(model_dir, spec.attn_implementation)
        t0 = time.perf_counter()
        model: Any = AutoModelForCausalLM.from_pretrained(
            model_dir,
            dtype=getattr(torch, dtype) if dtype != "auto" else "auto",
            attn_implementation=self.attn,
            trust_remote_code=spec.trust_remote_code,
            use_safetensors=True,
        )
        self.model: Any = model.to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=spec.trust_remote_code)
        self.start_s = time.perf_counter() - t0
        self._targets: dict[str, Any] = dict(self.model.named_parameters()) | dict(self.model.named_buffers())
        self._views = ParamViews()
        self._lm = None

    def _prepare(self, model_cfg: dict, merge_cfg: dict, storage_device: str | None, storage_dtype: str) -> dict:
        t0 = time.perf_counter()
        # reuse_outputs: set_point copies each tensor before asking for the next
        self.plan = build_plan(
            model_cfg,
            merge_cfg,
            device=self.device,
            storage_device=storage_device,
            storage_dtype=getattr(torch, storage_dtype),
            progress=True,
            reuse_outputs=True,
        )
        unknown = [n for n in self.plan.names if n not in self._targets]
        if unknown:
            raise ValueError(f"checkpoint tensors the loaded model does not have: {unknown[:5]}")
        # transformers names its parameters as the checkpoint does: merged tensors are written straight into them
        self._views = ParamViews.by_name(self.model, self.plan.shapes())
        return {
            "load_s": time.perf_counter() - t0,
            "resident_bytes": self.plan.resident_bytes(),
            "notes": self.plan.notes,
            "device": self.device,
        }

    @torch.no_grad()
    def set_point(self, method: str, lam: float, knobs: dict) -> dict[str, float]:
        t0 = time.perf_counter()
        self._views.check_live(self.model)
        point = self.plan.build(get_method(method), lam, self.model.dtype, into=self._views.dests, **knobs)
        for name, t in point:  # what is not written in place (buffers, non-float tensors passed through)
            self._targets[name].copy_(t)  # a tied head shares the embedding's storage: updated with it
        return point.switch_times(time.perf_counter() - t0)

    def lm(self) -> HFLM:
        if self._lm is None:
            from lm_eval.models.huggingface import HFLM

            self._lm = HFLM(
                pretrained=self.model,
                tokenizer=self.tokenizer,
                batch_size=self.spec.batch_size,
                max_length=engine_len(self.spec, self.model_dir),
                max_gen_toks=self.spec.max_gen_toks,
            )
        return self._lm

    def info(self) -> dict[str, Any]:
        import transformers

        return {
            "engine": "hf",
            "package": "transformers",
            "version": transformers.__version__,
            "start_s": round(self.start_s, 3),
            "dtype": str(self.model.dtype).replace("torch.", ""),
            "device": self.device,
            "attn_implementation": self.model.config._attn_implementation,
        }

    def close(self) -> None:
        self.model = self._lm = None
        self._targets, self._views = {}, ParamViews()
