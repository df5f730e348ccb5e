"""Checks that run before any engine starts, so that bad input costs seconds and writes nothing: a job's values
(``preflight``), the keys an override may add (``schema``), the engine's sizes for a suite (``sizing``) and what a
pair is and will cost from its headers alone (``check``, also ``mergesweep check``).
"""
