"""Beam search and sampling in plain NumPy, float64: the oracle the compiled
search (`fastformer.model.beam`) is tested against, token for token.

Both drive a *step decoder* (see `fastformer.decoding`): step(tokens (R,))
-> logits (R, V) of every row's next token, reorder(rows) makes row r
continue row rows[r]'s history. The options are `SearchOptions`
(`fastformer.search_options`).

Beam search, per sentence, with K = beam_size rows (row b * K + k):
- the scores of the K live beams start at (0, -inf, ..., -inf): one live
  hypothesis, so no duplicates;
- each step t (making token t + 1) adds log_softmax(logits) to each live
  beam's score (eos gets -inf while t < min_len) and ranks the K * V
  continuations, best first, ties to the lower index beam * V + token;
- walking the ranking, a continuation ending in eos among the best K is a
  finished hypothesis of length t + 1 (eos counted), scored score / lp(t + 1);
  the first K that do not end in eos are the next live beams, in rank order;
- a sentence is done once it has K finished hypotheses; at max_len its
  live beams join them (length max_len, no eos). The search stops early when
  every sentence is done. The num_hypotheses best (earlier found first on a
  tie) are returned, with their scores.
beam_size 1 is greedy decoding.

Sampling (beam_size 1): each step, row b's logits / temperature are cut to
their top_k largest (0: all), then to the smallest prefix whose softmax
probability reaches top_p; token i of that prefix (best first) is drawn when
u < cumulative_probability[i], u = word 0 of Philox4x32-10(counter (b, 0,
SAMPLING_SITE, t), key seed) / 2**32. The score is the sum of the model's
log-probabilities of the drawn tokens (eos -inf before min_len, as above).
"""
from dataclasses import dataclass

import numpy as np

from fastformer.reference.dropout import philox4x32

SAMPLING_SITE = 0x7F000000  # a Philox counter word no dropout site uses


@dataclass
class Hypotheses:
    """The result of a search over B sentences.

    tokens[b][i]: int64 array of hypothesis i of sentence b (best first), eos
    included when it finished; scores[b][i]: its score (the log-probability sum
    / lp(length) for beam search, the log-probability sum for sampling)."""
    tokens: list
    scores: list

    def best(self, eos_id):
        """(B, L) int64 of every sentence's best hypothesis, eos-padded (L >= 1)."""
        return pad([hyps[0] if hyps else np.zeros(0, np.int64) for hyps in self.tokens], eos_id)


def pad(rows, eos_id):
    """int64 token arrays -> (len(rows), L) int64, eos-padded, L = max(1, longest)."""
    L = max([1] + [len(r) for r in rows])
    out = np.full((len(rows), L), eos_id, dtype=np.int64)
    for b, r in enumerate(rows):
        out[b, :len(r)] = r
    return out


def log_softmax(logits):
    """float64 log-softmax over the last axis."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def beam_search(decoder, batch_size, max_len, bos_id, eos_id, options):
    """Beam search (module doc) of batch_size sentences -> Hypotheses."""
    B, K, lp = batch_size, options.beam_size, options.penalty
    scores = np.full((B, K), -np.inf)
    scores[:, 0] = 0.0
    history = np.zeros((B, K, 0), dtype=np.int64)
    finished = [[] for _ in range(B)]  # (score, tokens) in the order found
    done = np.zeros(B, dtype=bool)
    tokens = np.full(B * K, bos_id, dtype=np.int64)
    for t in range(max_len):
        logp = log_softmax(decoder.step(tokens))
        if t < options.min_len:
            logp[:, eos_id] = -np.inf
        V = logp.shape[-1]
        cand = (scores[:, :, None] + logp.reshape(B, K, V)).reshape(B, K * V)
        best = np.argsort(-cand, axis=1, kind="stable")[:, :2 * K]
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
                        finished[b].append((s / lp(t + 1), np.append(history[b, k], eos_id)))
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
    out_tokens, out_scores = [], []
    for b in range(B):
        hyps = list(finished[b])
        if not done[b]:
            L = history.shape[2]
            hyps += [(scores[b, k] / lp(L), history[b, k].copy()) for k in range(K) if scores[b, k] > -np.inf]
        order = sorted(range(len(hyps)), key=lambda i: -hyps[i][0])[:options.num_hypotheses]  # stable
        out_tokens.append([hyps[i][1] for i in order])
        out_scores.append([float(hyps[i][0]) for i in order])
    return Hypotheses(out_tokens, out_scores)


def uniform(seed, rows, step):
    """float64 uniforms in [0, 1) for sentences `rows` at `step` (module doc)."""
    rows = np.asarray(rows, dtype=np.uint64)
    w = philox4x32(rows & np.uint64(0xFFFFFFFF), rows >> np.uint64(32), SAMPLING_SITE, step,
                   seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)[0]
    return w.astype(np.float64) / 2.0 ** 32


def sample_token(logits, options, u):
    """One row: logits (V,) float64 with -inf for forbidden tokens, u in [0, 1) -> token id."""
    x = logits / options.temperature
    order = np.argsort(-x, kind="stable")
    if options.top_k:
        order = order[:options.top_k]
    p = np.exp(x[order] - x[order[0]])
    p /= p.sum()
    if options.top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(p), options.top_p)) + 1  # smallest prefix reaching top_p
        p = p[:keep] / p[:keep].sum()
    cp = np.cumsum(p)
    return int(order[min(int(np.searchsorted(cp, u, side="right")), len(cp) - 1)])


def sample(decoder, batch_size, max_len, bos_id, eos_id, options):
    """Random sampling (module doc) of batch_size sentences -> Hypotheses (one each)."""
    B = batch_size
    tokens = np.full(B, bos_id, dtype=np.int64)
    done = np.zeros(B, dtype=bool)
    score = np.zeros(B)
    out = []
    for t in range(max_len):
        logits = np.asarray(decoder.step(tokens), dtype=np.float64)
        logp = log_softmax(logits)
        if t < options.min_len:
            logits[:, eos_id] = -np.inf
            logp[:, eos_id] = -np.inf
        u = uniform(options.seed, np.arange(B), t)
        nxt = np.array([sample_token(logits[b], options, u[b]) for b in range(B)], dtype=np.int64)
        nxt[done] = eos_id
        score += np.where(done, 0.0, logp[np.arange(B), nxt])
        out.append(nxt)
        done |= nxt == eos_id
        if done.all():
            break
        tokens = nxt
    out = np.stack(out, axis=1)
    rows = []
    for row in out:
        hits = np.flatnonzero(row == eos_id)
        rows.append(row[:hits[0] + 1] if hits.size else row)
    return Hypotheses([[r] for r in rows], [[float(s)] for s in score])


def search(decoder, batch_size, max_len, bos_id, eos_id, options):
    """sample when options.sampling, else beam_search."""
    fn = sample if options.sampling else beam_search
    return fn(decoder, batch_size, max_len, bos_id, eos_id, options)
