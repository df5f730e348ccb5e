"""Typed run settings: the top level of ``conf/config.yaml`` (strength, seed, ..., ``sweep``, ``extra``), written once.

The same pattern as ``engines/spec.py`` (read its docstring). ``RunSpec`` holds the settings of one run and their
defaults; ``ConfigSchema`` is the schema of the whole composed config, stored in Hydra's ``ConfigStore`` as
``config_schema`` and listed first in ``conf/config.yaml``'s defaults. It is derived from the other specs, so no
default is written twice: the config groups first (``GROUPS``, each typed by its own group's schema), then every
field of ``RunSpec``, then ``storage`` (``StorageSpec``), then the keys presets may set (``WHEN_SET``). That order
is the order of a record's ``config`` (records kept it before the schema existed).

* **Typed at composition**: ``force=maybe``, ``offline=1.5``, ``sweep.nme=x`` or a misspelt top-level key stop Hydra's
  composition. ``strength``, ``seed`` and ``bootstrap`` are ``Any`` there on purpose: Hydra reads ``strength=0`` as
  an int and ``strength=0.5`` as a float and the record keeps what it read (a float type would turn ``0`` into
  ``0.0`` and change records and point ids), and their one-line messages (``seed must be an integer (e.g.
  seed=1234), got 'abc'``) are the CLI's, tested end to end. ``validate()`` checks them. ``sweep.name`` is ``Any``
  for the same reason: Hydra reads ``sweep.name=123`` as a number, and the record keeps the number.
* **Keys only presets set** (``WHEN_SET``: ``objective`` of the Optuna presets, ``judge_model`` of
  ``partial_adaptation``) are left out of records by ``points.container`` while they hold their default: ``{}`` for
  ``objective`` (a mapping, so ``+objective.kind=pareto`` still adds to it), ``MISSING`` for ``judge_model`` (so the
  preset's explicit ``judge_model: null`` is kept, as before). ``block_strengths`` is the block sweeper's own
  (``++block_strengths``, popped again per point) and is not part of the schema.
* **One results folder**: ``RunSpec.sweep_dir()`` is the only code that joins ``results_dir`` and ``sweep.name``, and it
  checks the name. Hydra's own ``hydra.run.dir``/``hydra.sweep.dir`` interpolations (``conf/config.yaml``) are the
  only other place; the callbacks run this check before Hydra writes there.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..checks.preflight import integer
from ..errors import ConfigError
from ..weights.spec import StorageSpec

GROUPS = ("model", "merge", "suite", "engine", "tracking")  # config groups, in the defaults' (and records') order
WHEN_SET = ("objective", "judge_model")  # top-level keys only presets (or +objective.*) set; out of records if unset
# One path component: letters, digits and ``._=,+-`` (what Hydra's override_dirname produces), not ``.``/``..``.
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=,+-]{0,127}")
# Seeds go to numpy's legacy ``np.random.seed`` (lm-eval's numpy_random_seed), which takes [0, 2**32 - 1] only.
SEED_RANGE = (0, 2**32 - 1)
# Bootstrap resamples: the CI holds resamples x items floats per task (10^5 x 541 IFEval items = 0.4 GB).
BOOTSTRAP_MAX = 100_000


@dataclass
class SweepSpec:
    """``sweep``: the sweep a point belongs to; its records land in ``results_dir/<name>``."""

    name: Any = "default"  # Any: Hydra reads sweep.name=123 as a number; the folder is named as it prints


@dataclass
class RunSpec:
    """The top-level settings of one run (``conf/config.yaml`` documents each)."""

    strength: Any = 1.0  # lam; int or float as given (see the module docstring)
    seed: Any = 1234
    bootstrap: Any = 1000  # resamples for the 95% CIs (0 = off)
    force: bool = False
    offline: bool = True
    results_dir: str = "${oc.env:MERGESWEEP_RESULTS,results}"
    sweep: SweepSpec = field(default_factory=SweepSpec)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lam(self) -> float:
        """``strength`` as a float, or a ConfigError that says what was given."""
        raw = self.strength
        if isinstance(raw, bool) or raw is None:
            raise ConfigError(f"strength must be a number, got {raw!r}")
        try:
            lam = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"strength must be a number (e.g. strength=0.5), got {raw!r}") from None
        if lam != lam or lam in (float("inf"), float("-inf")):
            raise ConfigError(f"strength must be finite, got {raw!r}")
        return lam

    def sweep_dir(self) -> Path:
        """``results_dir/<sweep.name>``, the one function that builds it, with the name checked: a plain folder
        name, so records never land outside ``results_dir``. Hydra reads ``sweep.name=123`` or ``=nan`` as a
        number, which ``Path`` refuses; the folder is named as Hydra's own ``${sweep.name}`` prints it."""
        name = self.sweep.name
        text = "" if name is None else str(name)
        if not _PLAIN.fullmatch(text) or set(text) <= {"."}:
            raise ConfigError(
                f"sweep.name must be a plain folder name (letters, digits, ._=,+-; no '/' or '..'), got {text!r}"
            )
        return Path(str(self.results_dir)) / text

    def validate(self) -> RunSpec:
        """Strength, sweep folder name, seed and bootstrap, in that order; a ``ConfigError`` naming the first bad
        value, else the spec itself."""
        _ = self.lam
        self.sweep_dir()
        integer(self.seed, "seed", *SEED_RANGE)
        integer(self.bootstrap, "bootstrap", 0, BOOTSTRAP_MAX)
        return self


def _schema() -> type:
    """``ConfigSchema``: ``GROUPS`` (``Any``, each typed by its group's own schema), ``RunSpec``'s fields with their
    types and defaults, ``storage`` and ``WHEN_SET``, in the order records keep."""
    hints = typing.get_type_hints(RunSpec)
    run = [(f.name, hints[f.name], _same_default(f)) for f in dataclasses.fields(RunSpec)]
    cls = dataclasses.make_dataclass(
        "ConfigSchema",
        [
            *((g, Any, field(default=MISSING)) for g in GROUPS),
            *run,
            ("storage", StorageSpec, field(default_factory=StorageSpec)),
            ("objective", dict[str, Any], field(default_factory=dict)),  # a Container: +objective.kind=... adds to it
            ("judge_model", Any, field(default=MISSING)),  # MISSING, not None: the preset's explicit null is kept
        ],
        namespace={"WHEN_SET": WHEN_SET, "__doc__": "The composed config (app/spec.py): what conf/config.yaml types."},
    )
    cls.__module__ = __name__  # pickled by reference (submitit launchers pickle the job's config)
    return cls


def _same_default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return field(default_factory=f.default_factory)
    return field(default=f.default)


ConfigSchema = _schema()


def register() -> None:
    """Store the schema ``conf/config.yaml`` names (``config_schema``); storing twice is harmless."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="config_schema", node=ConfigSchema)


def run_spec(cfg: Any) -> RunSpec:
    """The run settings of a composed config (typed or not) or of a record's plain ``config`` (not validated).

    Only ``RunSpec``'s keys are read (the groups and preset keys are other specs'); a key a plain config lacks gets
    the spec's default; a value of the wrong type is a ``ConfigError``.
    """
    if not isinstance(cfg, (DictConfig, Mapping)):
        raise ConfigError(f"a config must be a mapping of settings, got {cfg!r}")
    data: dict[str, Any] = {}
    for f in dataclasses.fields(RunSpec):
        if f.name not in cfg:
            continue
        value = cfg[f.name]
        if isinstance(value, DictConfig):
            value = OmegaConf.to_container(value, resolve=True)
        data[f.name] = value
    if isinstance(data.get("sweep"), Mapping):
        data["sweep"] = {"name": data["sweep"].get("name", SweepSpec.name)}  # +sweep.<note>: nothing reads it
    try:
        typed = OmegaConf.merge(OmegaConf.structured(RunSpec), data)
        return typing.cast(RunSpec, OmegaConf.to_object(typed))
    except OmegaConfBaseException as e:  # a plain config's value of the wrong type: name the key
        key = getattr(e, "full_key", None)
        raise ConfigError(f"{key}: {str(e).splitlines()[0]}" if key else str(e).splitlines()[0]) from None
