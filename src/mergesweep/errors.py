"""Every error that means *bad input* rather than a bug, in one module that imports nothing of the project.

Why one module: the CLI prints these as one clear line (exit != 0) and shows a traceback for anything else, so
it needs the full list without importing vLLM, lm-eval or torch; and modules low in the import graph
(checkpoints, merge) can raise them without importing modules above them. Each class is still re-exported from
its old home (``checkpoints.CheckpointError``, ``evals.suite.SuiteError``, ...) so existing imports keep working.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value is malformed (a strength that is not a number, an unknown method, ...)."""


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, unsafe to load, or incompatible with its partner."""


class MergeConfigError(ValueError):
    """A merge method, its knobs or its sources are misconfigured (raised before any heavy work)."""


class SuiteError(ValueError):
    """A suite names a task lm-eval does not know, or is otherwise malformed."""


class JudgeError(SuiteError):
    """The judge is misconfigured or unreachable; no record is written."""


class DataError(ValueError):
    """An evaluation data file is missing or malformed."""


class PointFailed(RuntimeError):
    """A point ran (or was about to) but its result cannot be trusted: non-finite weights, NaN log-likelihoods.
    No record is written, a failure entry is; the user sees one line (``guards.py`` has the subclasses)."""


class VLLMUnavailable(RuntimeError):
    """vLLM is not installed (or not importable) on this machine."""


# What the CLI turns into one line and exit != 0 (JudgeError is covered by SuiteError).
USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    CheckpointError,
    MergeConfigError,
    SuiteError,
    DataError,
    VLLMUnavailable,
)

# The same plus the environment's errors (full disk, read-only folder): handled by one `except` clause, then told
# apart with ``oneline.is_environment_error`` (an OSError that is a bug still gets its traceback).
USER_OR_OS_ERRORS: tuple[type[Exception], ...] = (*USER_ERRORS, OSError)

__all__ = [
    "USER_ERRORS",
    "USER_OR_OS_ERRORS",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "JudgeError",
    "MergeConfigError",
    "PointFailed",
    "SuiteError",
    "VLLMUnavailable",
]
