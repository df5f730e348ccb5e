"""mergesweep: sweep partial adaptation between a base and an instruct checkpoint.

Data flows one way: config (``app/``, checked in ``checks/``) -> weights (``weights/``, ``merge/``) -> engine
(``engines/``) -> suites (``evals/``) -> record (``store/``) -> report (``report/``); ``tools/`` holds the commands
beside the sweep (export, status, verify, setup-real).
"""

__version__ = "0.1.0"
