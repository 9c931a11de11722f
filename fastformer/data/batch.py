"""Padding encoded pairs into model-ready arrays."""
from typing import NamedTuple

import numpy as np

from fastformer.data.vocab import BOS_ID, EOS_ID, PAD_ID

IGNORE_INDEX = -100  # cross_entropy's default ignore_index: padded targets add no loss


class Batch(NamedTuple):
    """One training or evaluation batch (B examples, source length S, target length T).

    src: (B, S) int64, padded with pad_id
    tgt_in: (B, T) int64, bos + target, padded with pad_id (the decoder input)
    tgt_out: (B, T) int64, target + eos, padded with IGNORE_INDEX (the labels)
    src_key_padding_mask: (B, S) bool, True = padding
    tgt_key_padding_mask: (B, T) bool, True = padding
    """

    src: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    src_key_padding_mask: np.ndarray
    tgt_key_padding_mask: np.ndarray

    @property
    def num_tokens(self):
        """Non-padding source tokens plus target tokens (labels): the unit of tokens/s."""
        return int((~self.src_key_padding_mask).sum() + (~self.tgt_key_padding_mask).sum())

    def __len__(self):  # the batch size, not the NamedTuple's field count, is what callers want
        return self.src.shape[0]


def make_batch(sources, targets, pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID):
    """sources, targets: sequences of B id lists (targets without bos/eos) -> Batch.

    S = longest source (at least 1: an empty source is one pad, fully masked),
    T = longest target + 1.
    """
    if len(sources) != len(targets) or not sources:
        raise ValueError(f"make_batch needs one or more (source, target) pairs, got "
                         f"{len(sources)} sources and {len(targets)} targets")
    B = len(sources)
    S = max(1, max(len(s) for s in sources))
    T = max(len(t) for t in targets) + 1
    src = np.full((B, S), pad_id, dtype=np.int64)
    tgt_in = np.full((B, T), pad_id, dtype=np.int64)
    tgt_out = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
    src_mask = np.ones((B, S), dtype=bool)
    tgt_mask = np.ones((B, T), dtype=bool)
    for b, (s, t) in enumerate(zip(sources, targets)):
        src[b, :len(s)] = s
        src_mask[b, :len(s)] = False
        tgt_in[b, 0] = bos_id
        tgt_in[b, 1:len(t) + 1] = t
        tgt_out[b, :len(t)] = t
        tgt_out[b, len(t)] = eos_id
        tgt_mask[b, :len(t) + 1] = False
    return Batch(src, tgt_in, tgt_out, src_mask, tgt_mask)


def target_sequences(tgt_out, eos_id=EOS_ID):
    """tgt_out (B, T) labels -> list of B id lists, each up to (not including) eos."""
    rows = []
    for row in np.asarray(tgt_out):
        row = row[row != IGNORE_INDEX]
        rows.append(_until(row, eos_id))
    return rows


def _until(row, eos_id):
    hits = np.flatnonzero(row == eos_id)
    return [int(x) for x in (row[:hits[0]] if hits.size else row)]
