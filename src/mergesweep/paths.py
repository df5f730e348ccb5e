"""Where the project's shipped data and results live (overridable, so installed copies work too)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def register_resolvers() -> None:
    """``${ms_data:}`` in model configs: the shipped data folder. Every module that composes configs (the job,
    ``status``, ``check``, ``verify``) calls this first; registering twice is harmless."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("ms_data", lambda: str(data_dir()), replace=True)


def data_dir() -> Path:
    """Shipped models and evaluation data: ``$MERGESWEEP_DATA`` or the checkout's ``data/``."""
    return Path(os.environ.get("MERGESWEEP_DATA", REPO / "data"))


def conf_dir() -> Path:
    """Hydra config groups: ``$MERGESWEEP_CONF`` or the checkout's ``conf/``."""
    return Path(os.environ.get("MERGESWEEP_CONF", REPO / "conf"))


def offline_env(cache_root: Path) -> dict[str, str]:
    """Environment that keeps every library offline and its caches under ``cache_root``.

    Set before heavy imports: nothing may try a hub at run time, and NLTK must find the shipped punkt_tab
    (IFEval's scorer otherwise tries a download and later fails on ``LookupError``).
    """
    return {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(cache_root / "hf"),
        "VLLM_CACHE_ROOT": str(cache_root / "vllm"),
        "NLTK_DATA": str(data_dir() / "nltk"),
        "MPLCONFIGDIR": str(cache_root / "mpl"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
