"""Greedy and beam-search decoding for any model with the fastformer API.

Convention shared with `model.generate`: the result is a (B, L) int64 array
of generated tokens (bos not included), L <= max_len; a row that emitted
eos_id keeps eos_id in every later position.

`greedy_search` and `beam_search` drive a *step decoder*, an object with
    step(tokens)   tokens (R,) int64, every row's last token -> logits (R, V)
                   of the next token (R = batch * beam_size rows);
    reorder(rows)  rows (R,) int64: row r continues the history of row rows[r].
The models' `generate` supply one: the compiled model's keeps a key/value
cache, `PrefixDecoder` re-runs `forward` on the growing prefix.
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


def check_generate_args(model, src, max_len, bos_id, eos_id, beam_size, src_key_padding_mask):
    """The checks of `model.generate`; returns (src, max_len capped at
    model.max_len, src_key_padding_mask) or raises TypeError/ValueError
    naming the argument."""
    from fastformer.layout import check_ids, check_mask  # layout imports nothing of ours

    src = check_ids("src", src, model.src_vocab_size, model.max_len)
    for name, value in (("max_len", max_len), ("beam_size", beam_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not 0 <= value < model.tgt_vocab_size:
            raise ValueError(f"{name} must be a target token id in [0, {model.tgt_vocab_size}), got {value}")
    mask = check_mask("src_key_padding_mask", src_key_padding_mask, src.shape)
    # The decoder input is bos + the L - 1 tokens before the last: it must fit the positions.
    return src, min(int(max_len), model.max_len), mask


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


def _log_softmax(logits):
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def beam_search(decoder, batch_size, beam_size, max_len, bos_id, eos_id):
    """Beam search with a step decoder whose rows are (batch, beam) in C order.

    Each step ranks the beam_size * V continuations of every example by summed
    log-probability and keeps the best beam_size that do not end in eos; one
    ending in eos among the best beam_size is a finished hypothesis, scored by
    its sum divided by its length (eos included). An example is done when it
    has beam_size finished hypotheses; at max_len its live beams compete too.
    The highest normalised score wins (the earlier one on a tie). beam_size=1
    gives greedy decoding. Returns (B, L) int64, eos-padded.
    """
    B, K = batch_size, beam_size
    scores = np.full((B, K), -np.inf)
    scores[:, 0] = 0.0  # one live beam per example at the start: no duplicate hypotheses
    history = np.zeros((B, K, 0), dtype=np.int64)
    finished = [[] for _ in range(B)]  # (normalised score, tokens)
    done = np.zeros(B, dtype=bool)
    tokens = np.full(B * K, bos_id, dtype=np.int64)
    for t in range(max_len):
        logp = _log_softmax(decoder.step(tokens))
        V = logp.shape[-1]
        cand = (scores[:, :, None] + logp.reshape(B, K, V)).reshape(B, K * V)
        best = np.argsort(-cand, axis=1, kind="stable")[:, :2 * K]  # ties: lowest index first
        parents = np.zeros((B, K), dtype=np.int64)
        chosen = np.full((B, K), eos_id, dtype=np.int64)
        new_scores = np.full((B, K), -np.inf)
        for b in np.flatnonzero(~done):
            n = 0
            for rank, idx in enumerate(best[b]):
                s = cand[b, idx]
                if s == -np.inf or n == K:
                    break
                k, v = divmod(int(idx), V)
                if v == eos_id:
                    if rank < K:
                        finished[b].append((s / (t + 1), history[b, k].tolist() + [eos_id]))
                else:
                    parents[b, n], chosen[b, n], new_scores[b, n] = k, v, s
                    n += 1
            done[b] = len(finished[b]) >= K or n == 0
        if done.all():
            break
        history = np.concatenate([np.take_along_axis(history, parents[:, :, None], axis=1),
                                  chosen[:, :, None]], axis=2)
        scores = new_scores
        decoder.reorder((np.arange(B)[:, None] * K + parents).reshape(-1))
        tokens = chosen.reshape(-1)
    results = []
    for b in range(B):
        hyps = list(finished[b])
        if not done[b]:
            hyps += [(scores[b, k] / history.shape[2], history[b, k].tolist())
                     for k in range(K) if scores[b, k] > -np.inf]
        results.append(max(hyps, key=lambda h: h[0])[1] if hyps else [])
    L = max(1, max(len(r) for r in results))
    out = np.full((B, L), eos_id, dtype=np.int64)
    for b, r in enumerate(results):
        out[b, :len(r)] = r
    return out


def search(decoder, batch_size, max_len, bos_id, eos_id, beam_size=1):
    """greedy_search for beam_size 1, else beam_search."""
    if beam_size == 1:
        return greedy_search(decoder, batch_size, max_len, bos_id, eos_id)
    return beam_search(decoder, batch_size, beam_size, max_len, bos_id, eos_id)


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


def generate_uncached(model, src, max_len, bos_id, eos_id, beam_size=1, src_key_padding_mask=None):
    """`model.generate` by re-running forward on the prefix (PrefixDecoder), in
    eval mode (the model's mode and dropout counter are left as they were)."""
    src, max_len, mask = check_generate_args(model, src, max_len, bos_id, eos_id, beam_size,
                                             src_key_padding_mask)
    B = src.shape[0]
    if beam_size > 1:
        src = np.repeat(src, beam_size, axis=0)
        mask = None if mask is None else np.repeat(mask, beam_size, axis=0)
    was_training = model.training
    model.eval()
    try:
        return search(PrefixDecoder(model, src, mask), B, max_len, bos_id, eos_id, beam_size)
    finally:
        model.train(was_training)
