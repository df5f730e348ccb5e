"""Checkpoints on disk or in memory: finding and opening them, reading their tensors lazily (``tensor_stores``),
hashing and comparing them, and the one set of rules for which tensor names are embeddings and heads. Everything
that reads weights (merge methods, engines, checks) stands on this package; it imports none of them.
"""
