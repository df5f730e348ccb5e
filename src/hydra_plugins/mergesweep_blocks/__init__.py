"""Hydra plugin shim: Hydra instantiates sweepers only from classes defined in the ``hydra_plugins`` namespace.

The logic lives in ``mergesweep.sweeper``; ``conf/hydra/sweeper/blocks.yaml`` selects this class.
"""

from mergesweep.sweeper import BlockSweeper as _BlockSweeper


class BlockSweeper(_BlockSweeper):
    """``hydra/sweeper=blocks``: see ``mergesweep.sweeper.BlockSweeper``."""
