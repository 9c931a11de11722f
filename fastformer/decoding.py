"""Greedy decoding for any model with the fastformer API.

Convention shared with `model.generate`: the result is a (B, L) int64 array
of generated tokens (bos not included), L <= max_len; a row that emitted
eos_id keeps eos_id in every later position.
"""
import numpy as np


def greedy_decode(model, src, max_len, bos_id, eos_id, src_key_padding_mask=None):
    """Greedy decoding by re-running `model.forward` on the growing prefix
    (no key/value cache: O(max_len) full forwards; the fallback for models
    without `generate`).

    src: (B, S) integer ids; src_key_padding_mask: (B, S) bool or None.
    Returns (B, L) int64 with L <= min(max_len, model.max_len): it stops early
    once every row has emitted eos_id. Runs in eval mode (no dropout) and
    restores the model's mode after.
    """
    src = np.asarray(src)
    if src.ndim != 2:
        raise ValueError(f"src must have shape (B, S), got {src.shape}")
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
    # The decoder input is bos + the L - 1 tokens before the last: it must fit the positions.
    max_len = min(int(max_len), getattr(model, "max_len", max_len))
    B = src.shape[0]
    prefix = np.full((B, 1), bos_id, dtype=np.int64)
    done = np.zeros(B, dtype=bool)
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_len):
            logits = model.forward(src, prefix, src_key_padding_mask=src_key_padding_mask)
            nxt = logits[:, -1].argmax(axis=-1).astype(np.int64)
            nxt[done] = eos_id  # finished rows only pad with eos
            prefix = np.concatenate([prefix, nxt[:, None]], axis=1)
            done |= nxt == eos_id
            if done.all():
                break
    finally:
        model.train(was_training)
    return prefix[:, 1:]


def decode(model, src, max_len, bos_id, eos_id, src_key_padding_mask=None):
    """Greedy decoding: the model's own (key/value-cached) `generate` when it
    has one, else `greedy_decode`. Same result convention."""
    generate = getattr(model, "generate", None)
    if generate is not None:
        return np.asarray(generate(src, max_len, bos_id, eos_id,
                                   src_key_padding_mask=src_key_padding_mask), dtype=np.int64)
    return greedy_decode(model, src, max_len, bos_id, eos_id, src_key_padding_mask)


def strip_eos(tokens, eos_id):
    """(B, L) generated tokens -> list of B id lists, each cut before its first eos."""
    rows = []
    for row in np.asarray(tokens):
        hits = np.flatnonzero(row == eos_id)
        rows.append([int(x) for x in (row[:hits[0]] if hits.size else row)])
    return rows
