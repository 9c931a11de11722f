"""Beam search for the compiled model: the reference's rules
(`fastformer.reference.beam_search`, whose module doc states them), with
every step's work done for all sentences at once:

- `ops.beam_topk` fuses log-softmax (fp32) with a partial selection of the
  2K best continuations of each sentence (K = beam_size): no V-wide sort;
- the bookkeeping (which continuations finish, which K live on, their
  parents) is array arithmetic over the (sentences, 2K) candidates;
- a sentence that is done leaves the batch: its rows leave the decoder's
  cache and its memory leaves cross-attention, so later steps cost less;
- the decoder's cache is reordered by index: each row's list of the cache
  slots holding its history is replaced by its parent's, and no key or
  value moves (`CachedDecoder.select`).

Scores are float32 sums (the reference's are float64), so they agree to
rounding; tokens agree unless rounding flips a near tie.
"""
import numpy as np

from fastformer.ops import beam_topk
from fastformer.reference.beam_search import Hypotheses


def beam_search(decoder, batch_size, max_len, bos_id, eos_id, options):
    """Beam search of batch_size sentences with a CachedDecoder -> Hypotheses."""
    B, K, N = batch_size, options.beam_size, 2 * options.beam_size
    active = np.arange(B)                      # sentence ids of the batch's rows, in order
    scores = np.full((B, K), -np.inf, dtype=np.float32)
    scores[:, 0] = 0.0
    history = np.zeros((B, K, 0), dtype=np.int64)
    finished = [[] for _ in range(B)]          # (score, tokens) in the order found
    n_finished = np.zeros(B, dtype=np.int64)
    tokens = np.full(B * K, bos_id, dtype=np.int64)
    ranks = np.arange(N)
    for t in range(max_len):
        logits = decoder.step(tokens)
        V = logits.shape[1]
        index, cand = beam_topk(logits, scores, N, eos_id if t < options.min_len else -1)
        beam, token = np.divmod(index, V)
        valid = cand > -np.inf
        ends = valid & (token == eos_id)
        live = valid & ~ends
        slot = np.cumsum(live, axis=1) - 1
        keep = live & (slot < K)
        # eos among a sentence's best K: a finished hypothesis of length t + 1
        lp = float(options.penalty(t + 1))
        for a, r in zip(*np.nonzero(ends & (ranks < K))):
            b = active[a]
            finished[b].append((float(cand[a, r]) / lp, np.append(history[a, beam[a, r]], eos_id)))
            n_finished[b] += 1
        # the first K live continuations, in rank order, are the next beams
        Ba = len(active)
        a_i, r_i = np.nonzero(keep)
        s_i = slot[a_i, r_i]
        new_scores = np.full((Ba, K), -np.inf, dtype=np.float32)
        parents = np.zeros((Ba, K), dtype=np.int64)
        chosen = np.full((Ba, K), eos_id, dtype=np.int64)
        new_scores[a_i, s_i] = cand[a_i, r_i]
        parents[a_i, s_i] = beam[a_i, r_i]
        chosen[a_i, s_i] = token[a_i, r_i]
        history = np.concatenate([np.take_along_axis(history, parents[:, :, None], axis=1),
                                  chosen[:, :, None]], axis=2)
        going = (n_finished[active] < K) & keep.any(axis=1)
        if not going.any():
            active = active[:0]
            break
        stay = np.flatnonzero(going)
        if t + 1 < max_len:  # the decoder follows the kept beams of the sentences still going
            decoder.select((stay[:, None] * K + parents[stay]).reshape(-1), stay)
        active, history, scores = active[stay], history[stay], new_scores[stay]
        tokens = chosen[stay].reshape(-1)
    # at max_len the live beams of the sentences still going compete too
    lp = float(options.penalty(history.shape[2]))
    for a, b in enumerate(active):
        finished[b] += [(float(scores[a, k]) / lp, history[a, k].copy()) for k in range(K)
                        if scores[a, k] > -np.inf]
    out_tokens, out_scores = [], []
    for hyps in finished:
        order = sorted(range(len(hyps)), key=lambda i: -hyps[i][0])[:options.num_hypotheses]  # stable
        out_tokens.append([hyps[i][1] for i in order])
        out_scores.append([hyps[i][0] for i in order])
    return Hypotheses(out_tokens, out_scores)
