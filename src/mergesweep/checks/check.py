"""``mergesweep check model=...``: what a pair is and what sweeping it will cost, before any weight is read.

Why: on a GPU the first surprise of a new family should not come after a 16 GB download and an engine start.
This reads only ``config.json``, ``tokenizer_config.json`` and the safetensors *headers* (for hub ids:
``huggingface_hub.get_safetensors_metadata`` and ``hf_hub_download`` of the two JSON files; local folders
through the same code), and reports per checkpoint the architecture, tying, dtype, size and vocabulary, what
the merge will do about any difference between them, and the memory a sweep needs on one GPU. The same
check runs before the engine in ``points.preflight`` when ``offline=false``.

    mergesweep check model=llama3_1_8b                       # needs offline=false for hub ids
    mergesweep check model=toy engine.max_model_len=2048 storage.dtype=bfloat16
    mergesweep check --all model=...                        # every per-tensor PROBLEM line, not a summary
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..app.spec import run_spec
from ..engines.lengths import FALLBACK
from ..engines.spec import engine_spec
from ..paths import apply_env, conf_dir, register_resolvers
from ..weights.checkpoints import CheckpointError, resolve, safetensors_files
from ..weights.spec import storage_spec
from ..weights.tensor_names import is_vocab_sized, tied_head_copies
from ..weights.tensor_stores import read_header

BYTES = {
    "F64": 8,
    "F32": 4,
    "BF16": 2,
    "F16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}
DTYPE_BYTES = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}
OVERHEAD_GB = 1.5  # CUDA context, activations and sampler buffers of one engine (rough, per GPU)
CONCURRENT_SEQS = 16  # KV cache sized for this many full-length sequences in flight
MAX_TENSOR_LINES = 5  # per-tensor PROBLEM lines shown before they are summarised (``--all``: every one)


@dataclass
class Meta:
    """One checkpoint as its headers describe it: no tensor data."""

    ref: str
    config: dict
    tokenizer: dict
    tensors: dict[str, tuple[tuple[int, ...], str]]  # name -> (shape, safetensors dtype tag)
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> dict:
        return self.config.get("text_config") or self.config

    @property
    def arch(self) -> str:
        return (self.config.get("architectures") or ["?"])[0]

    @property
    def tied(self) -> bool:
        explicit = self.text.get("tie_word_embeddings", self.config.get("tie_word_embeddings"))
        return bool(explicit) if explicit is not None else not any(n.endswith("lm_head.weight") for n in self.tensors)

    @property
    def weights(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Tensors the merge sees: a tied model's saved head copy is dropped (as ``Checkpoint`` does)."""
        drop = set(tied_head_copies(self.tensors)) if self.tied else set()
        return {n: v for n, v in self.tensors.items() if n not in drop}

    @property
    def params(self) -> int:
        return sum(math.prod(s) for s, _ in self.weights.values())

    @property
    def nbytes(self) -> int:
        return sum(math.prod(s) * BYTES.get(d, 4) for s, d in self.weights.values())

    @property
    def dtype(self) -> str:
        tags = {d for _, d in self.weights.values()}
        return "/".join(sorted(tags))


def read_meta(ref: str, revision: str | None = None, offline: bool = True) -> Meta:
    """Headers of a local folder, or of a hub repo (offline: only from a warm HF cache, else a clear error)."""
    p = Path(os.path.expanduser(str(ref)))
    if p.is_dir() or offline:
        return _local_meta(resolve(str(ref), revision), str(ref))
    return _hub_meta(str(ref), revision)


def _local_meta(path: Path, ref: str) -> Meta:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: no readable config.json ({type(e).__name__}: {e})") from None
    tok = path / "tokenizer_config.json"
    tokenizer = json.loads(tok.read_text()) if tok.is_file() else {}
    if (path / "chat_template.jinja").is_file():  # transformers >= 4.43 saves the template beside the config
        tokenizer.setdefault("chat_template", (path / "chat_template.jinja").read_text())
    tensors: dict[str, tuple[tuple[int, ...], str]] = {}
    files = safetensors_files(path)
    if not files:
        raise CheckpointError(f"{path}: no *.safetensors weights (check reads safetensors headers only)")
    for f in files:
        try:  # the header only, with the merge path's reader; dtypes stay safetensors tags, as the hub gives them
            header = read_header(f)[1]
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{f}: not a readable safetensors file ({type(e).__name__}: {e})") from None
        for n, entry in header.items():
            if n != "__metadata__":
                tensors[n] = (tuple(int(d) for d in entry["shape"]), str(entry["dtype"]))
    return Meta(ref, config, tokenizer, tensors)


def _hub_meta(repo: str, revision: str | None) -> Meta:
    from huggingface_hub import get_safetensors_metadata, hf_hub_download

    try:
        md = get_safetensors_metadata(repo, revision=revision)
        config = json.loads(Path(hf_hub_download(repo, "config.json", revision=revision)).read_text())
    except Exception as e:  # unknown repo, gated without HF_TOKEN, no network
        raise CheckpointError(f"{repo}: could not read its headers from the hub ({type(e).__name__}: {e})") from None
    try:
        tokenizer = json.loads(Path(hf_hub_download(repo, "tokenizer_config.json", revision=revision)).read_text())
    except Exception:
        tokenizer = {}
    tensors: dict[str, tuple[tuple[int, ...], str]] = {
        n: (tuple(t.shape), str(t.dtype)) for fm in md.files_metadata.values() for n, t in fm.tensors.items()
    }
    return Meta(repo, config, tokenizer, tensors)


def compare(a: Meta, b: Meta, label_a: str = "base", label_b: str = "instruct") -> tuple[list[str], list[str]]:
    """(problems that stop a merge, notes on what the merge does about a difference)."""
    problems, notes = [], []
    if a.arch != b.arch:
        problems.append(f"architectures differ: {label_a} {a.arch}, {label_b} {b.arch}")
    if a.tied != b.tied:
        problems.append(
            f"{label_a} is {'tied' if a.tied else 'untied'} but {label_b} is "
            f"{'tied' if b.tied else 'untied'}: the output heads cannot be merged tensor by tensor"
        )
    wa, wb = a.weights, b.weights
    only_a, only_b = sorted(set(wa) - set(wb)), sorted(set(wb) - set(wa))
    if only_a or only_b:
        problems.append(f"tensor names differ: only in {label_a}: {only_a[:3]}; only in {label_b}: {only_b[:3]}")
    for n in sorted(set(wa) & set(wb)):
        sa, sb = wa[n][0], wb[n][0]
        if sa == sb:
            continue
        if is_vocab_sized(n) and sa[1:] == sb[1:]:
            notes.append(
                f"{n}: {label_a} has {sa[0]} rows, {label_b} {sb[0]}: the merge keeps {label_b}'s "
                + (
                    f"{sb[0]} rows; rows {sa[0]}..{sb[0] - 1} come from {label_b} at every lam"
                    if sb[0] > sa[0]
                    else f"{sb[0]} rows and drops {label_a}'s extra rows"
                )
            )
        else:
            problems.append(f"{n}: shapes {sa} vs {sb}")
    if a.dtype != b.dtype:
        notes.append(
            f"dtypes differ ({label_a} {a.dtype}, {label_b} {b.dtype}): the merge computes in fp32 and "
            "casts to the engine dtype"
        )
    va, vb = a.text.get("vocab_size"), b.text.get("vocab_size")
    if va != vb:
        notes.append(f"config vocab_size differs ({va} vs {vb}); the engine is built from {label_b}'s config")
    return problems, notes


def estimate_memory(
    params: int,
    ckpt_bytes: float,
    layers: int,
    kv_heads: int,
    head_dim: int,
    *,
    inputs: int = 2,
    engine_dtype: str = "bfloat16",
    storage_dtype: str = "float32",
    storage_device: str | None = None,
    max_model_len: int = 2048,
) -> dict[str, float]:
    """GB one GPU needs for a sweep: engine weights + resident merge inputs + KV cache + overhead.

    ``inputs``: checkpoints the plan holds (2 for base/instruct, 3 with a residual target). They stay in their
    checkpoint dtype, or ``storage_dtype`` where that is narrower; ``storage_device="cpu"`` moves them to host
    RAM and ``"disk"`` keeps none. vLLM's ``gpu_memory_utilization`` must leave room for resident inputs.
    """
    gb = 1e9
    eng = params * DTYPE_BYTES.get(engine_dtype, 2) / gb
    per_input = params * min(ckpt_bytes, DTYPE_BYTES.get(storage_dtype, 4)) / gb
    kv = 2 * layers * kv_heads * head_dim * DTYPE_BYTES.get(engine_dtype, 2) * max_model_len * CONCURRENT_SEQS / gb
    held = inputs * per_input
    on_gpu = held if storage_device in (None, "cuda", "null") else 0.0
    return {
        "engine_weights_gb": eng,
        "inputs_gb": held,
        "kv_cache_gb": kv,
        "overhead_gb": OVERHEAD_GB,
        "gpu_gb": eng + on_gpu + kv + OVERHEAD_GB,
        "host_gb": held if storage_device == "cpu" else 0.0,
        "inputs_on_gpu_gb": on_gpu,
    }


def memory_for(metas: list[Meta], cfg: Mapping[str, Any]) -> dict[str, float]:
    """``estimate_memory`` from headers and the composed config (engine dtype, storage, max_model_len)."""
    m, t = metas[-1], metas[-1].text
    heads = int(t.get("num_attention_heads") or 1)
    head_dim = int(t.get("head_dim") or int(t.get("hidden_size", 0)) // heads)
    eng = engine_spec(cfg["engine"])
    storage = storage_spec(cfg["storage"])
    dtype = eng.dtype
    return estimate_memory(
        m.params,
        m.nbytes / max(1, m.params),
        int(t.get("num_hidden_layers", 0)),
        int(t.get("num_key_value_heads") or heads),
        head_dim,
        inputs=len(metas),
        engine_dtype=dtype if dtype in DTYPE_BYTES else "bfloat16",
        storage_dtype=storage.dtype,
        storage_device=storage.device,
        max_model_len=_model_len(eng.max_model_len, t.get("max_position_embeddings")),
    )


def _model_len(value: Any, positions: Any) -> int:
    """The number set, or for ``auto`` (sized per suite by the sweep's preflight) ``lengths.FALLBACK`` capped by
    the model's positions, as an engine built without a suite gets."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return min(FALLBACK, int(positions)) if isinstance(positions, int) and positions > 0 else FALLBACK


def check_model(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Read every checkpoint of ``cfg.model`` (base, instruct, target when given) and compare them."""
    model, offline = cfg["model"], run_spec(cfg).offline
    roles = [r for r in ("base", "instruct", "target") if model.get(r)]
    metas = {r: read_meta(str(model[r]), model.get("revision"), offline) for r in roles}
    problems, notes = compare(metas["base"], metas["instruct"])
    if "target" in metas:
        p, n = compare(metas["base"], metas["target"], "base", "target")
        problems += p
        notes += n
    declared = model.get("tied")
    if declared is not None and bool(declared) != metas["instruct"].tied:
        problems.append(
            f"model.tied is {declared} but {model['instruct']}'s config says "
            f"{'tied' if metas['instruct'].tied else 'untied'}"
        )
    ordered = [metas[r] for r in ("base", "target", "instruct") if r in metas]
    return {"checkpoints": metas, "problems": problems, "notes": notes, "memory": memory_for(ordered, cfg)}


def check_before_download(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The pre-engine form (``points.preflight`` with ``offline=false``): log the report, raise on a problem."""
    import logging

    report = check_model(cfg)
    logging.getLogger("mergesweep").info("check:\n%s", describe(report))
    if report["problems"]:
        raise CheckpointError("; ".join(report["problems"][:3]))
    return report


_PER_TENSOR = re.compile(r"^\S+: shapes \(")


def problem_lines(problems: list[str], show_all: bool = False) -> list[str]:
    """``PROBLEM:`` lines: the fatal reasons first, then per-tensor shape differences, summarised unless
    ``show_all``. Why: two architectures differ in nearly every tensor, and 170 lines of shapes used to bury the
    one line that matters (architectures differ)."""
    tensors = [p for p in problems if _PER_TENSOR.match(p)]
    lines = [f"PROBLEM: {p}" for p in problems if not _PER_TENSOR.match(p)]
    if show_all or len(tensors) <= MAX_TENSOR_LINES:
        return lines + [f"PROBLEM: {p}" for p in tensors]
    first = "; ".join(p.split(":")[0] for p in tensors[:MAX_TENSOR_LINES])
    return [
        *lines,
        f"PROBLEM: {len(tensors)} tensors differ in shape (first {MAX_TENSOR_LINES}: {first}); --all lists each",
    ]


def describe(report: dict[str, Any], show_all: bool = False) -> str:
    lines = [f"cannot merge: {report['problems'][0]}"] if report["problems"] else []
    for role, m in report["checkpoints"].items():
        t, tok = m.text, m.tokenizer
        added = len(tok.get("added_tokens_decoder") or {})
        lines.append(
            f"{role}: {m.ref}\n  {m.arch}, {'tied' if m.tied else 'untied'}, {m.dtype}, "
            f"{m.params / 1e9:.3g}B params, {m.nbytes / 1e9:.3g} GB, {len(m.weights)} tensors; "
            f"{t.get('num_hidden_layers')} layers, hidden {t.get('hidden_size')}, vocab {t.get('vocab_size')} "
            f"(tokenizer: {added} added tokens, chat template {'yes' if tok.get('chat_template') else 'no'})"
        )
    mem = report["memory"]
    lines.append(
        f"memory on one GPU: ~{mem['gpu_gb']:.3g} GB = engine weights {mem['engine_weights_gb']:.3g} + "
        f"merge inputs {mem['inputs_on_gpu_gb']:.3g} + KV cache {mem['kv_cache_gb']:.3g} + overhead "
        f"{mem['overhead_gb']:.3g}" + (f"; host RAM {mem['host_gb']:.3g} GB" if mem["host_gb"] else "")
    )
    lines += [f"note: {n}" for n in report["notes"]]
    lines += problem_lines(report["problems"], show_all)
    lines.append("verdict: " + ("cannot merge (see PROBLEM lines)" if report["problems"] else "mergeable"))
    return "\n".join(lines)


def compose_config(overrides: list[str]) -> dict[str, Any]:
    """The app's config with Hydra overrides, through Hydra's compose API (the same config a sweep sees)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    register_resolvers()

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return {str(k): v for k, v in out.items()}


def main(argv: list[str] | None = None) -> None:
    """``mergesweep check [Hydra overrides]``: exit 0 mergeable, 1 with one ``error:`` line otherwise."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return
    show_all = "--all" in argv
    argv = [a for a in argv if a != "--all"]
    try:
        cfg = compose_config(argv)
    except Exception as e:  # Hydra's override and missing-option errors
        raise SystemExit(f"mergesweep check: error: {type(e).__name__}: {e}".splitlines()[0]) from None

    apply_env(run_spec(cfg).offline)  # offline=false (hub ids) is the config's to say
    try:
        report = check_model(cfg)
    except (CheckpointError, ValueError, KeyError) as e:
        raise SystemExit(f"mergesweep check: error: {e}") from None
    print(describe(report, show_all))
    if report["problems"]:
        raise SystemExit(f"mergesweep check: error: {report['problems'][0]}")


if __name__ == "__main__":
    main()
