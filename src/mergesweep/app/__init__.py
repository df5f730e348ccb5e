"""The Hydra app: one job is one sweep point (``cli``), run from config to record by ``runner``; what a point is
and whether it can run (``points``), the multirun callbacks and the block sweeper, the per-point locks, the
objective an optimising sweeper reads, and how a command ends on bad input (``oneline``). It sits above every other
package and wires them together.
"""
