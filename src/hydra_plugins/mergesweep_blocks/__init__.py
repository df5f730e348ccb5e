"""Hydra plugin shim: Hydra instantiates sweepers only from classes defined in the ``hydra_plugins`` namespace.

The logic lives in ``mergesweep.app.sweeper``; ``conf/hydra/sweeper/blocks.yaml`` selects this class.
"""

from mergesweep.app.sweeper import BlockSweeper as _BlockSweeper


class BlockSweeper(_BlockSweeper):
    """``hydra/sweeper=blocks``: see ``mergesweep.app.sweeper.BlockSweeper``."""
