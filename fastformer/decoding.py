"""Greedy and beam-search decoding for any model with the fastformer API.

Convention shared with `model.generate`: the result is a (B, L) int64 array
of generated tokens (bos not included), L <= max_len; a row that emitted
eos_id keeps eos_id in every later position.

`greedy_search` here and the searches of `fastformer.reference.beam_search`
(beam search with n-best, length penalty and min_len; sampling; their
options are `fastformer.search_options`) drive a *step decoder*, an object with
    step(tokens)   tokens (R,) int64, every row's last token -> logits (R, V)
                   of the next token (R = batch * beam_size rows);
    reorder(rows)  rows (R,) int64: row r continues the history of row rows[r].
The models' `generate` supply one: the compiled model's keeps a key/value
cache, `PrefixDecoder` re-runs `forward` on the growing prefix.
"""
import numpy as np

from fastformer.search_options import check_max_len, search_options


def greedy_decode(model, src, max_len, bos_id, eos_id, src_key_padding_mask=None):
    """Greedy decoding by re-running `model.forward` on the growing prefix
    (no key/value cache: O(max_len) full forwards; the fallback for models
    without `generate`).

    src: (B, S) integer ids; src_key_padding_mask: (B, S) bool or None.
    Returns (B, L) int64 with L <= max_len (<= model.max_len): it stops early
    once every row has emitted eos_id. Runs in eval mode (no dropout) and
    restores the model's mode after.
    """
    src = np.asarray(src)
    if src.ndim != 2:
        raise ValueError(f"src must have shape (B, S), got {src.shape}")
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
    if hasattr(model, "max_len"):
        max_len = check_max_len(max_len, model.max_len)
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


def check_generate_args(model, src, max_len, bos_id, eos_id, beam_size, src_key_padding_mask, **options):
    """The checks of `model.generate`; returns (src, max_len, src_key_padding_mask,
    SearchOptions) or raises TypeError/ValueError naming the argument. max_len
    above the model's positions (its max_len) is an error, not silently capped."""
    from fastformer.layout import check_ids, check_mask  # layout imports nothing of ours

    src = check_ids("src", src, model.src_vocab_size, model.max_len)
    max_len = check_max_len(max_len, model.max_len)
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not 0 <= value < model.tgt_vocab_size:
            raise ValueError(f"{name} must be a target token id in [0, {model.tgt_vocab_size}), got {value}")
    mask = check_mask("src_key_padding_mask", src_key_padding_mask, src.shape)
    return src, max_len, mask, search_options(beam_size=beam_size, max_len=max_len, **options)


def greedy_search(decoder, batch_size, max_len, bos_id, eos_id):
    """Greedy decoding of `batch_size` rows with a step decoder (module doc).
    Stops once every row has emitted eos_id. Returns (B, L) int64."""
    tokens = np.full(batch_size, bos_id, dtype=np.int64)
    done = np.zeros(batch_size, dtype=bool)
    out = []
    for _ in range(max_len):
        nxt = np.asarray(decoder.step(tokens)).argmax(axis=-1).astype(np.int64)
        nxt[done] = eos_id  # finished rows only pad with eos
        out.append(nxt)
        done |= nxt == eos_id
        if done.all():
            break
        tokens = nxt
    return np.stack(out, axis=1)


class PrefixDecoder:
    """A step decoder without a cache: each step re-runs `model.forward` on
    the source and the whole prefix so far (the reference of cached decoding).
    src (R, S) and src_key_padding_mask are already repeated per beam."""

    def __init__(self, model, src, src_key_padding_mask=None):
        self.model, self.src, self.mask = model, src, src_key_padding_mask
        self.prefix = np.zeros((src.shape[0], 0), dtype=np.int64)

    def step(self, tokens):
        self.prefix = np.concatenate([self.prefix, np.asarray(tokens, dtype=np.int64)[:, None]], axis=1)
        return self.model.forward(self.src, self.prefix, src_key_padding_mask=self.mask)[:, -1]

    def reorder(self, rows):
        self.prefix = self.prefix[rows]


def hypotheses_uncached(model, src, max_len, bos_id, eos_id, beam_size=1, src_key_padding_mask=None,
                        **options):
    """The reference search (`fastformer.reference.beam_search`) over a
    PrefixDecoder, in eval mode (the model's mode and dropout counter are left
    as they were) -> Hypotheses (n-best tokens and scores per sentence)."""
    from fastformer.reference.beam_search import search

    src, max_len, mask, opts = check_generate_args(model, src, max_len, bos_id, eos_id, beam_size,
                                                   src_key_padding_mask, **options)
    B, K = src.shape[0], opts.beam_size
    if K > 1:
        src = np.repeat(src, K, axis=0)
        mask = None if mask is None else np.repeat(mask, K, axis=0)
    was_training = model.training
    model.eval()
    try:
        return search(PrefixDecoder(model, src, mask), B, max_len, bos_id, eos_id, opts)
    finally:
        model.train(was_training)


def generate_uncached(model, src, max_len, bos_id, eos_id, beam_size=1, src_key_padding_mask=None, **options):
    """`model.generate` by re-running forward on the prefix: the best
    hypothesis of `hypotheses_uncached`, (B, L) int64 eos-padded."""
    return hypotheses_uncached(model, src, max_len, bos_id, eos_id, beam_size, src_key_padding_mask,
                               **options).best(eos_id)
