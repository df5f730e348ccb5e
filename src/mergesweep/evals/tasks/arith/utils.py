"""Loader of the ``arith_word`` task (``!function utils.load``): the fixed test split of mergesweep.evals.arith."""


def load(**_):
    """lm-eval ``custom_dataset``: one ``test`` split, each doc with its zero-shot ``prompt`` and exact ``answer``."""
    from datasets import Dataset, DatasetDict

    from mergesweep.evals.arith import prompt, test_split

    return DatasetDict({"test": Dataset.from_list([{**p, "prompt": prompt(p["question"])} for p in test_split()])})
