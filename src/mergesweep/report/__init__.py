"""Records into something to read: the table and trade-off plot (``report``, also ``mergesweep report``), the
paper figures (``figures``) and Weights & Biases logging (``tracking``).
"""
