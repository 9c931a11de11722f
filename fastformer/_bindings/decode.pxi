# Beam-search step kernels (csrc/decode/).

cdef extern from "decode/beam_topk.h" nogil:
    int ff_beam_topk(int64_t *out_index, float *out_score, const float *logits, const float *beam_score,
                     size_t B, size_t K, size_t V, size_t N, int64_t blocked)


def beam_topk(logits, beam_scores, n, blocked=-1):
    """beam_topk(logits, beam_scores, n, blocked=-1) -> (index, score)

    One beam-search ranking step, fused: logits (B*K, V) float32, beam_scores
    (B, K) float32 (-inf: a dead beam). For each sentence, the n best of
    beam_scores[k] + log_softmax(logits[b*K + k])[v] over all (k, v), best
    first, ties to the lower index k*V + v: index (B, n) int64 (k*V + v, or -1
    past the last candidate) and score (B, n) float32 (-inf there). Token
    `blocked` (>= 0) is never a candidate (eos before min_len)."""
    check_float32("logits", logits, 2)
    check_float32("beam_scores", beam_scores, 2)
    cdef size_t B = beam_scores.shape[0], K = beam_scores.shape[1]
    if K < 1:
        raise ValueError(f"beam_scores must have shape (B, K) with K >= 1, got {beam_scores.shape}")
    if logits.shape[0] != B * K or logits.shape[1] < 1:
        raise ValueError(f"logits must have shape (B*K, V) = ({B * K}, V >= 1) for beam_scores of shape "
                         f"{beam_scores.shape}, got {logits.shape}")
    cdef size_t V = logits.shape[1]
    cdef int64_t N = check_int("n", n)
    if N < 1:
        raise ValueError(f"n must be >= 1, got {N}")
    cdef int64_t blk = check_int("blocked", blocked)
    if not -1 <= blk < <int64_t>V:
        raise ValueError(f"blocked must be a token id in [0, {V}) or -1, got {blk}")
    index = np.empty((B, N), dtype=np.int64)
    score = np.empty((B, N), dtype=np.float32)
    if B == 0:
        return index, score
    cdef int64_t *pi = _i64p(index)
    cdef float *ps = _f32p(score)
    cdef const float *pl = _f32p(logits)
    cdef const float *pb = _f32p(beam_scores)
    cdef int rc
    with nogil:
        rc = ff_beam_topk(pi, ps, pl, pb, B, K, V, <size_t>N, blk)
    if rc != 0:
        raise MemoryError("beam_topk: could not allocate its workspace")
    return index, score
