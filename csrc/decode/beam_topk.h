/* One beam-search step's ranking, fused: log-softmax of every row of logits
 * (fp32) added to its beam's score, and the N best continuations of each
 * sentence kept by partial selection (a sorted list of N, never a full sort).
 *
 * Rows are (sentence, beam) in C order, K beams per sentence. Candidate
 * (k, v) of a sentence has index k * V + v and score
 *     beam_score[k] + (logits[k, v] - lse_k),  lse_k = log sum_v exp(logits[k, v]),
 * ranked best first, ties to the lower index. A beam whose score is -inf is
 * dead (skipped); token `blocked` (eos before min_len; -1 for none) is never
 * a candidate, though it counts in lse. Slots left over hold index -1 and
 * score -inf. Each row and each sentence has one owner thread: bitwise
 * identical for any thread count. */
#ifndef FF_BEAM_TOPK_H
#define FF_BEAM_TOPK_H

#include <stddef.h>
#include <stdint.h>

/* out_index, out_score are (B, N); logits (B*K, V); beam_score (B, K).
 * Returns 0, or -1 when out of memory. */
int ff_beam_topk(int64_t *out_index, float *out_score, const float *logits, const float *beam_score,
                 size_t B, size_t K, size_t V, size_t N, int64_t blocked);

/* Per-row leaves, one per instruction set: lse of x (V,), and the scan that
 * inserts score + (x[v] - lse) for every v != blocked into the sorted list
 * (top_s, top_i) of *count <= N entries, with index base + v. */
typedef float (*ff_row_lse_fn)(const float *x, size_t V);
typedef void (*ff_topk_scan_fn)(float *top_s, int64_t *top_i, size_t *count, size_t N, const float *x, size_t V,
                                float score, float lse, int64_t base, int64_t blocked);
float ff_row_lse_generic(const float *x, size_t V);
float ff_row_lse_avx2(const float *x, size_t V);
void ff_topk_scan_generic(float *top_s, int64_t *top_i, size_t *count, size_t N, const float *x, size_t V,
                          float score, float lse, int64_t base, int64_t blocked);
void ff_topk_scan_avx2(float *top_s, int64_t *top_i, size_t *count, size_t N, const float *x, size_t V,
                       float score, float lse, int64_t base, int64_t blocked);

/* Insert (s, i) into the sorted list: after every entry >= s, so an equal
 * score inserted later (a higher index) ranks after. */
static inline void ff_topk_insert(float *top_s, int64_t *top_i, size_t *count, size_t N, float s, int64_t i) {
    size_t n = *count;
    if (n == N && !(s > top_s[N - 1])) return;
    size_t p = n < N ? n : N - 1;
    while (p > 0 && top_s[p - 1] < s) {
        top_s[p] = top_s[p - 1];
        top_i[p] = top_i[p - 1];
        p--;
    }
    top_s[p] = s;
    top_i[p] = i;
    if (n < N) *count = n + 1;
}

#endif
