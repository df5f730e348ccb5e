"""Hydra's composition errors (a misspelt key, a value of the wrong type, a config option that is not there, an
override that does not parse) in one line: ``mergesweep: error: engine.max_modellen is not a key of engine ...``.

Why: Hydra prints these in 3-40 lines (the OmegaConf cause, the options one a line, its search path, a hint
about ``HYDRA_FULL_ERROR``), and a sweep of bad overrides needs one line each. Hydra has no hook for how it
reports them: ``_run_hydra`` hands each step to ``hydra._internal.utils.run_and_report``, which prints and exits.
``one_line_composition_errors`` wraps that function for the life of the console script so these errors end as
``SystemExit`` with one line; every other error still reaches Hydra's own report, and ``HYDRA_FULL_ERROR=1``
still shows the full traceback. If a Hydra release moves that function, the wrapper does nothing and Hydra's
own several lines come back (``tests/test_cli_errors.py`` notices).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hydra._internal import utils as hydra_utils
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from .oneline import full_errors

COMPOSITION_ERRORS: tuple[type[Exception], ...] = (ConfigCompositionException, OverrideParseException)


def composition_line(e: BaseException) -> str:
    """One readable line for ``e``: which key or option, and what was wrong or what it takes."""
    cause = e.__cause__
    if isinstance(e, MissingConfigException) and e.options is not None and e.missing_cfg_file:
        group, _, name = str(e.missing_cfg_file).rpartition("/")
        options = [o for o in e.options if not o.endswith("_schema")]  # schemas are not a user's choice
        return f"{group}={name}: no such option in {group}/; options: {', '.join(options)}"
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
        return _unknown_key(e, cause)
    if isinstance(cause, OmegaConfBaseException) and cause.full_key:
        detail = str(cause.msg).strip().splitlines()[0]
        takes = _field_type(cause)
        if not takes:
            return f"{_flat(e)}: {detail}"
        return f"{cause.full_key} must be {takes}, got {cause.value!r} ({detail})"
    return _flat(e)


def _unknown_key(e: BaseException, cause: OmegaConfBaseException) -> str:
    """A key the typed node does not have: the closest one, else all of them; in a free-form dict, the ``+``."""
    fields = _fields(cause.object_type)
    if not fields:  # a dict node in struct mode: Hydra's own hint (``+key=value`` adds a key)
        return _flat(e)
    parent = str(cause.full_key).rpartition(".")[0]
    close = difflib.get_close_matches(str(cause.key), fields, n=1)
    hint = f"did you mean {parent}.{close[0]}?" if close else f"its keys: {', '.join(fields)}"
    return f"{cause.full_key} is not a key of {parent or 'the config'}; {hint}"


def _fields(cls: Any) -> list[str]:
    """The field names of a dataclass schema, else none."""
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []


def _field_type(cause: OmegaConfBaseException) -> str:
    """The declared type of the field ``cause`` is about, as written in its schema (``int | str``), or ''."""
    if not dataclasses.is_dataclass(cause.object_type):
        return ""
    types = {f.name: f.type for f in dataclasses.fields(cause.object_type)}
    declared = types.get(str(cause.key), "")
    if isinstance(declared, type):
        return declared.__name__
    return str(declared).replace("typing.", "")  # a schema without ``from __future__ import annotations``


def _flat(e: BaseException) -> str:
    """Hydra's message on one line, without its config search path."""
    text = str(e).split("Config search path:")[0]
    return "; ".join(line.strip().rstrip(".") for line in text.splitlines() if line.strip())


@contextmanager
def one_line_composition_errors(prog: str) -> Iterator[None]:
    """While inside: a composition error ends the program as ``<prog>: error: <one line>`` (exit 1)."""
    original = getattr(hydra_utils, "run_and_report", None)
    if original is None:  # pragma: no cover - a Hydra that reports another way: its own lines
        yield
        return
    report: Callable[[Callable[[], Any]], Any] = original

    def run_and_report(func: Any) -> Any:
        def step() -> Any:
            try:
                return func()
            except COMPOSITION_ERRORS as e:
                if full_errors():
                    raise
                raise SystemExit(f"{prog}: error: {composition_line(e)}") from None

        return report(step)

    hydra_utils.run_and_report = run_and_report  # _run_hydra looks it up in its module at each step
    try:
        yield
    finally:
        hydra_utils.run_and_report = original
