#include <math.h>

#include "decode/beam_topk.h"
#include "runtime/simd_target.h"
#include "runtime/runtime.h"
#include "runtime/scratch.h"

#define TOPK_GRAIN 16384 /* logits worth a thread */

/* Portable leaves: libm expf, the sum in double. */
float ff_row_lse_generic(const float *x, size_t V) {
    float m = x[0];
    for (size_t j = 1; j < V; j++)
        if (x[j] > m) m = x[j];
    double se = 0.0;
    for (size_t j = 0; j < V; j++) se += expf(x[j] - m);
    return m + (float)log(se);
}

void ff_topk_scan_generic(float *top_s, int64_t *top_i, size_t *count, size_t N, const float *x, size_t V,
                          float score, float lse, int64_t base, int64_t blocked) {
    for (size_t v = 0; v < V; v++) {
        if ((int64_t)v == blocked) continue;
        ff_topk_insert(top_s, top_i, count, N, score + (x[v] - lse), base + (int64_t)v);
    }
}

int ff_beam_topk(int64_t *out_index, float *out_score, const float *logits, const float *beam_score,
                 size_t B, size_t K, size_t V, size_t N, int64_t blocked) {
    size_t R = B * K;
    /* Each row's own N best first (rows in parallel), then each sentence merges its K lists. */
    float *row_s = ff_scratch(FF_SCRATCH_0, R * N * sizeof(float));
    int64_t *row_i = ff_scratch(FF_SCRATCH_1, R * N * sizeof(int64_t));
    size_t *row_n = ff_scratch(FF_SCRATCH_2, R * sizeof(size_t));
    if (row_s == NULL || row_i == NULL || row_n == NULL) return -1;
    ff_row_lse_fn lse_fn = ff_row_lse_generic;
    ff_topk_scan_fn scan = ff_topk_scan_generic;
#if FF_X86 /* AVX-512 shares the AVX2 leaves */
    if (ff_simd_active() >= FF_SIMD_AVX2) lse_fn = ff_row_lse_avx2, scan = ff_topk_scan_avx2;
#endif
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(R * V, TOPK_GRAIN)))
    for (size_t r = 0; r < R; r++) {
        row_n[r] = 0;
        float score = beam_score[r];
        if (score == -INFINITY) continue;
        const float *x = logits + r * V;
        scan(row_s + r * N, row_i + r * N, &row_n[r], N, x, V, score, lse_fn(x, V),
             (int64_t)((r % K) * V), blocked);
    }
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(R * N, 4096)))
    for (size_t b = 0; b < B; b++) {
        float *s = out_score + b * N;
        int64_t *ix = out_index + b * N;
        size_t count = 0;
        for (size_t k = 0; k < K; k++) {
            size_t r = b * K + k;
            for (size_t j = 0; j < row_n[r]; j++) ff_topk_insert(s, ix, &count, N, row_s[r * N + j], row_i[r * N + j]);
        }
        for (size_t j = count; j < N; j++) {
            s[j] = -INFINITY;
            ix[j] = -1;
        }
    }
    return 0;
}
