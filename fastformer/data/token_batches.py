"""Batches for decoding many inputs fast: sorted by length so a batch holds
little padding, and cut by a token budget (batch size x its longest input)
rather than a fixed count, so short inputs travel in big batches and long
ones in small; results come back in input order."""
import numpy as np


def token_budget_batches(lengths, max_tokens, max_batch=None):
    """lengths: (n,) input lengths -> list of int64 index arrays, longest inputs
    first, each batch's len(batch) * max(lengths[batch]) <= max_tokens (an input
    longer than max_tokens gets a batch of its own) and len(batch) <= max_batch
    when given. Ties keep input order; the batches together are a permutation
    of range(n)."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer) or (lengths.size and lengths.min() < 0):
        raise ValueError(f"lengths must be a 1-D array of non-negative integers, got {lengths!r}")
    for name, value in (("max_tokens", max_tokens), ("max_batch", max_batch)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)  # sorted: the first is the batch's longest
        size = max(1, int(max_tokens) // longest)
        if max_batch is not None:
            size = min(size, int(max_batch))
        batches.append(order[start:start + size].astype(np.int64))
        start += size
    return batches


def map_in_batches(fn, inputs, max_tokens, max_batch=None):
    """fn(list of inputs) -> list of as many outputs, called on the token-budget
    batches of `inputs` (sequences; their len is the length); returns the
    outputs in the order of `inputs`."""
    inputs = list(inputs)
    out = [None] * len(inputs)
    for batch in token_budget_batches([len(x) for x in inputs], max_tokens, max_batch):
        results = list(fn([inputs[i] for i in batch]))
        if len(results) != len(batch):
            raise ValueError(f"fn returned {len(results)} outputs for a batch of {len(batch)} inputs")
        for i, r in zip(batch, results):
            out[i] = r
    return out
