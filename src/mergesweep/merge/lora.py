"""Read a PEFT LoRA adapter directory as per-tensor task vectors for ``adapter_transfer``.

The adapter's own config class (``peft.LoraConfig.from_pretrained``) reads ``adapter_config.json``, so the
scaling rules are PEFT's: ``lora_alpha / r`` (``lora_alpha / sqrt(r)`` with ``use_rslora``), per-module
``rank_pattern`` / ``alpha_pattern`` overrides, ``fan_in_fan_out`` (GPT-2 Conv1D) transposes, and embedding
adapters (``lora_embedding_A/B``, delta ``(B @ A)^T``). Only ``A`` and ``B`` stay resident (they are small);
``B @ A`` is formed per tensor when a point is built, so untargeted tensors cost nothing.

What cannot be transferred as a pure low-rank delta is refused with a clear error: DoRA (its magnitude
vector rescales whole columns), and full tensors saved through ``modules_to_save`` or trained biases.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file

from ..weights.checkpoints import Checkpoint, CheckpointError

if TYPE_CHECKING:
    from peft import LoraConfig

_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B)"
    r"(?:\.[A-Za-z0-9_]+)?(?:\.weight)?$"
)


@dataclass
class LoraAdapter:
    """``{model tensor name: (A, B, scale, transpose)}`` for one PEFT LoRA adapter directory."""

    path: Path
    allow_pickle: bool = False
    factors: dict[str, tuple[torch.Tensor, torch.Tensor, float, bool]] = field(init=False)
    config: dict = field(init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        cfg = self._load_config()
        self.config = {
            "r": cfg.r,
            "lora_alpha": cfg.lora_alpha,
            "use_rslora": bool(cfg.use_rslora),
            "target_modules": sorted(cfg.target_modules)
            if isinstance(cfg.target_modules, (set, list))
            else cfg.target_modules,
        }
        self.factors = self._scaled_factors(self._factor_pairs(self._read()), cfg)
        if not self.factors:
            raise CheckpointError(f"{self.path}: adapter has no LoRA factors")

    def _load_config(self) -> LoraConfig:
        """PEFT's own ``LoraConfig`` of the folder, so the scaling rules are PEFT's. Refused here, before any
        tensor is read: a folder that is not a LoRA adapter, and DoRA (not a pure low-rank delta)."""
        from peft import LoraConfig

        if not (self.path / "adapter_config.json").is_file():
            raise CheckpointError(f"{self.path}: no adapter_config.json (is this a PEFT adapter directory?)")
        try:
            cfg = LoraConfig.from_pretrained(str(self.path))
        except Exception as e:  # not LoRA, corrupt JSON, unknown fields
            raise CheckpointError(
                f"{self.path / 'adapter_config.json'}: not a LoRA config ({type(e).__name__}: {e})"
            ) from None
        if getattr(cfg, "use_dora", False):
            raise CheckpointError(
                f"{self.path}: DoRA adapters rescale whole weight columns and cannot be applied as "
                "a low-rank delta; merge it with PEFT instead"
            )
        return cfg

    def _factor_pairs(self, tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        """``{module: {kind: factor}}``. Any tensor that is not a LoRA factor (``modules_to_save``, trained biases)
        is refused: a low-rank transfer would silently drop it."""
        pairs: dict[str, dict[str, torch.Tensor]] = {}
        other = []
        for key, t in tensors.items():
            m = _KEY.match(key)
            if m is None:
                other.append(key)
                continue
            pairs.setdefault(m["module"], {})[m["kind"]] = t
        if other:
            raise CheckpointError(
                f"{self.path}: adapter holds tensors that are not LoRA factors (modules_to_save "
                f"or trained biases?), which a low-rank transfer cannot apply: {other[:5]}"
            )
        return pairs

    def _scaled_factors(
        self, pairs: dict[str, dict[str, torch.Tensor]], cfg: LoraConfig
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor, float, bool]]:
        """``{tensor name: (A, B, scale, transpose)}`` with PEFT's scale per module (``alpha_pattern``, rsLoRA).
        Embedding adapters and ``fan_in_fan_out`` store the delta transposed; a lone A or B is refused."""
        factors = {}
        for module, kinds in pairs.items():
            emb = "lora_embedding_A" in kinds or "lora_embedding_B" in kinds
            a, b = (
                (kinds.get("lora_embedding_A"), kinds.get("lora_embedding_B"))
                if emb
                else (kinds.get("lora_A"), kinds.get("lora_B"))
            )
            if a is None or b is None:
                raise CheckpointError(f"{self.path}: module {module} has only one of its LoRA factors")
            r = a.shape[0]
            alpha = _pattern(cfg.alpha_pattern, module, cfg.lora_alpha)
            scale = alpha / math.sqrt(r) if cfg.use_rslora else alpha / r
            factors[module + ".weight"] = (a, b, float(scale), emb or bool(cfg.fan_in_fan_out))
        return factors

    def _read(self) -> dict[str, torch.Tensor]:
        st = self.path / "adapter_model.safetensors"
        if st.is_file():
            try:
                return load_file(str(st))
            except Exception as e:
                raise CheckpointError(f"{st}: not a readable safetensors file ({type(e).__name__}: {e})") from None
        binf = self.path / "adapter_model.bin"
        if binf.is_file() and not self.allow_pickle:
            raise CheckpointError(
                f"{binf} is a pickled adapter, which can run code when loaded; convert it to "
                "safetensors or opt in with model.allow_pickle=true"
            )
        if binf.is_file():
            return torch.load(binf, map_location="cpu", weights_only=True)
        raise CheckpointError(f"{self.path}: no adapter_model.safetensors")

    @property
    def names(self) -> list[str]:
        return list(self.factors)

    def check(self, ckpt: Checkpoint) -> None:
        """Every targeted tensor must exist in ``ckpt`` with the shape of its delta."""
        missing = [n for n in self.factors if n not in ckpt.shapes]
        if missing:
            raise CheckpointError(f"adapter {self.path} targets tensors the model lacks: {missing[:5]}")
        bad = [
            f"{n}: delta {s} vs weight {ckpt.shapes[n]}"
            for n in self.factors
            if (s := self.delta_shape(n)) != tuple(ckpt.shapes[n])
        ]
        if bad:
            raise CheckpointError(
                f"adapter {self.path} does not fit {ckpt.path} (first {min(5, len(bad))} of "
                f"{len(bad)}): " + "; ".join(bad[:5])
            )

    def delta_shape(self, name: str) -> tuple[int, ...]:
        a, b, _, transpose = self.factors[name]
        return (a.shape[1], b.shape[0]) if transpose else (b.shape[0], a.shape[1])

    def to(self, device: str) -> LoraAdapter:
        self.factors = {n: (a.to(device), b.to(device), s, t) for n, (a, b, s, t) in self.factors.items()}
        return self

    def delta(self, name: str, device: str | torch.device) -> torch.Tensor | None:
        """``scale * B @ A`` (transposed where PEFT transposes) in fp32 on ``device``; None if untargeted."""
        f = self.factors.get(name)
        if f is None:
            return None
        a, b, scale, transpose = f
        d = (b.to(device, torch.float32) @ a.to(device, torch.float32)).mul_(scale)
        return d.T.contiguous() if transpose else d


def _pattern(patterns: dict | None, module: str, default: float) -> float:
    """PEFT's per-module override rule: a key matches when the module name ends with it (as a regex)."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return float(value)
    return float(default)
