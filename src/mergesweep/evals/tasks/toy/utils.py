"""Loaders for the toy suites (referenced from the YAMLs with ``!function utils.*``)."""
from mergesweep.evals.data import jsonl_file, jsonl_splits

IFEVAL_FIELDS = ("key", "prompt", "instruction_id_list", "kwargs")


def recall(name: str, **_):
    """Few-shot recall task ``name``: train = demonstration pool, test = queries."""
    return jsonl_splits("toy_suites", name, ("train", "test"), required=("key", "label", "choices"))


def toy_ifeval(**_):
    return jsonl_file("toy_suites", "toy_ifeval.jsonl", required=IFEVAL_FIELDS)
