"""NumPy twin of the beam-search step kernel (`fastformer.ops.beam_topk`),
float64 arithmetic for the oracle."""
import numpy as np


def beam_topk(logits, beam_scores, n, blocked=-1):
    """logits (B*K, V), beam_scores (B, K) -> (index (B, n) int64, score (B, n)):
    per sentence the n best beam_scores[k] + log_softmax(logits[b*K + k])[v],
    best first, ties to the lower index k*V + v; -1 / -inf past the last
    candidate; dead beams (-inf) and token `blocked` are not candidates."""
    B, K = beam_scores.shape
    x = np.asarray(logits, dtype=np.float64)
    V = x.shape[1]
    logp = x - x.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    if blocked >= 0:
        logp[:, blocked] = -np.inf
    cand = (np.asarray(beam_scores, dtype=np.float64)[:, :, None] + logp.reshape(B, K, V)).reshape(B, K * V)
    index = np.argsort(-cand, axis=1, kind="stable")[:, :n]
    score = np.take_along_axis(cand, index, axis=1)
    index = np.where(score == -np.inf, -1, index)
    if n > K * V:
        pad = n - K * V
        index = np.concatenate([index, np.full((B, pad), -1)], axis=1)
        score = np.concatenate([score, np.full((B, pad), -np.inf)], axis=1)
    return index.astype(np.int64), score
