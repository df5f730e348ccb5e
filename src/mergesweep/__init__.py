"""mergesweep: sweep partial adaptation between a base and an instruct checkpoint.

Data flows one way: config -> weights (checkpoints, merge) -> engine -> suites -> record -> report.
"""

__version__ = "0.1.0"
