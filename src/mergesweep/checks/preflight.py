"""Cheap checks of one job's values, run before any engine starts (for every job of a multirun at once).

Why a module of its own: a sweep point costs an engine start and minutes of evaluation, so every value that
can be judged from the config and a few file headers is judged first: limits, merge knob *values* (not just
their names), tokenizer files, and whether the results folder takes writes (the run's own settings, strength,
sweep name and seeds, are ``app/spec.py``'s ``RunSpec.validate``). Each
check raises one of ``errors.USER_ERRORS`` naming the value, which the CLI prints as one line.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, MergeConfigError
from ..paths import data_dir
from ..store.records import RecordStore

if TYPE_CHECKING:
    from ..evals.spec import SuiteSpec
    from ..merge.spec import MergeSpec

# Any one of these in a checkpoint folder is a tokenizer the engine can load.
# A tensor name per model part (see merge.base.classify), for the knob dry run.
PART_NAMES = (
    "model.embed_tokens.weight",
    "lm_head.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.1.mlp.up_proj.weight",
    "model.layers.0.input_layernorm.weight",
    "model.norm.weight",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model", "*.tiktoken")


def integer(value: Any, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int (``seed=abc`` or ``seed=1.5`` is a ConfigError naming the key)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    try:
        out = int(value)
    except ValueError:
        raise ConfigError(f"{key} must be an integer (e.g. {key}=1234), got {value!r}") from None
    if minimum is not None and out < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value!r}")
    if maximum is not None and out > maximum:
        raise ConfigError(f"{key} must be <= {maximum}, got {value!r}")
    return out


_VALID_SUITES: set[str] = set()


def suite(spec: SuiteSpec) -> None:
    """Numbers, tasks and data of a suite (``SuiteSpec.validate``, then ``evals.suite.validate``), each distinct
    suite once per process: building its tasks takes ~1 s, and a multirun checks every job before the first starts."""
    import dataclasses
    import json

    from ..evals import suite as suites  # torch: app.spec imports this module for every composition

    key = json.dumps([dataclasses.asdict(spec), str(data_dir())], sort_keys=True, default=str)
    if key not in _VALID_SUITES:
        spec.validate()
        suites.validate(spec)
        _VALID_SUITES.add(key)


def knob_values(merge: MergeSpec, lam: float, n_deltas: int = 1) -> None:
    """Knob values a method accepts, checked by type and by running it once on a 4x4 tensor.

    Why a dry run: each method checks its own ranges (``ties`` density in [0, 1], DARE p in [0, 1)) only
    when it meets the first tensor, which is after the engine started. Running it here on a tiny input
    raises the same error in milliseconds, and catches values of the wrong type (``density=abc``) whose
    TypeError would otherwise surface deep inside the merge.
    """
    import torch

    from ..merge import check_knobs, classify, method_knobs  # torch: as above

    fn, method, knobs = merge.method, merge.name, merge.knobs
    check_knobs(fn, knobs)
    defaults = method_knobs(fn)
    for k, v in knobs.items():
        if isinstance(defaults.get(k), (int, float)) and not isinstance(defaults.get(k), bool):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise MergeConfigError(f"merge.knobs.{k} must be a number for method {method}, got {v!r}")
            if not math.isfinite(v):
                raise MergeConfigError(f"merge.knobs.{k} must be finite, got {v!r}")
    if not knobs:
        return
    anchor, deltas = _test_tensors(n_deltas)
    for name in PART_NAMES:  # one tensor of each model part: per-part knobs (lines' embed=, ...) all get used
        try:
            out = fn(anchor, deltas, lam=float(lam), info=classify(name, 2), **dict(knobs))
        except MergeConfigError as e:
            raise MergeConfigError(f"merge method {method}: {e}") from None
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise MergeConfigError(f"merge method {method} cannot use knobs {dict(knobs)}: {e}") from None
        if not torch.isfinite(out).all():
            raise MergeConfigError(f"merge method {method} with knobs {dict(knobs)} gives non-finite weights")


def _test_tensors(n_deltas: int) -> tuple[Any, list[Any]]:
    """A seeded unit-scale 4x4 anchor and ``n_deltas`` deltas for the dry runs."""
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 4, generator=g), [torch.randn(4, 4, generator=g) for _ in range(max(1, n_deltas))]


def strength_fits(merge: MergeSpec, lam: float, n_deltas: int = 1) -> None:
    """The method at this strength, run on unit-scale test tensors, stays within the guard's fp32 bound.

    Why: ``strength=1e30`` used to start the engine, merge, and only then fail the guard on the first merged
    tensor (a 60-120 line traceback). It raises the guard's own ``NonFiniteError`` here, before any engine, so
    the point still fails the way the guard fails it (failure entry, one line) while a multirun's other points
    run. Finite strengths that overflow only on real weights are caught by the guard after merging.
    """
    from ..guards import NonFiniteError, tensor_norm  # torch: as above
    from ..merge import classify

    anchor, deltas = _test_tensors(n_deltas)
    for name in PART_NAMES:
        out = merge.method(anchor, deltas, lam=float(lam), info=classify(name, 2), **merge.knobs)
        if not bool(tensor_norm(out).isfinite()):
            raise NonFiniteError(
                f"merged point ({merge.name}, lam={float(lam)!r}): tensors are not finite (too large for fp32 "
                "arithmetic) even on unit-scale test weights (found before any weight was merged)"
            )


def tokenizer_files(path: Path, role: str = "instruct") -> None:
    """The engine tokenizes with the instruct folder: without tokenizer files it would fail mid-generation."""
    path = Path(path)
    if not any(next(path.glob(p), None) is not None for p in TOKENIZER_FILES):
        raise ConfigError(
            f"model.{role} ({path}) has no tokenizer files (one of {', '.join(TOKENIZER_FILES)}); "
            "copy them from the model's original folder"
        )


def writable(sweep_dir: Path) -> None:
    """Records and samples can be written: probed by creating (and removing) a temp file, no folder made.

    Why probe rather than ``os.access``: as root, ``access`` says yes to read-only mounts and immutable
    folders; the probe sees what the writes will see.
    """
    store = RecordStore(sweep_dir)
    for target in (store.records, store.samples_root):
        probe = target
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise ConfigError(f"results folder not usable: {probe} is not a folder (needed for {target})")
        try:
            with tempfile.TemporaryFile(dir=probe, prefix=".mergesweep-probe-"):
                pass
        except OSError as e:
            raise ConfigError(
                f"results folder not writable: {probe} ({e.strerror or e}); records go to {target}"
            ) from None
