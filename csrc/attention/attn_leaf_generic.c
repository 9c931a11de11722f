/* Portable leaves of the attention kernels (any CPU). The loops are written
 * so that the compiler can vectorise the inner one with baseline SSE. */
#include <math.h>

#include "attention/attn_internal.h"
#include "gemm/gemm_internal.h"

static void gemm_generic(float *C, size_t ldc, const void *Av, size_t ars, size_t acs, const void *Bv, size_t ldb,
                         size_t m, size_t n, size_t k, float alpha, int accumulate, int storage) {
    (void)storage; /* 0: floats (attn_internal.h) */
    const float *A = Av, *B = Bv;
    float acc[256];
    for (size_t i = 0; i < m; i++) {
        for (size_t j0 = 0; j0 < n; j0 += 256) {
            size_t nn = n - j0 < 256 ? n - j0 : 256;
            for (size_t j = 0; j < nn; j++) acc[j] = 0.0f;
            for (size_t p = 0; p < k; p++) {
                float a = A[i * ars + p * acs];
                const float *b = B + p * ldb + j0;
                for (size_t j = 0; j < nn; j++) acc[j] += a * b[j];
            }
            float *c = C + i * ldc + j0;
            if (accumulate)
                for (size_t j = 0; j < nn; j++) c[j] += alpha * acc[j];
            else
                for (size_t j = 0; j < nn; j++) c[j] = alpha * acc[j];
        }
    }
}

static void softmax_cols_generic(float *ST, size_t ld, float *m, float *l, float *corr, size_t rows, size_t cols) {
    for (size_t c = 0; c < cols; c++) {
        float mx = m[c];
        for (size_t r = 0; r < rows; r++) mx = ST[r * ld + c] > mx ? ST[r * ld + c] : mx;
        float mu = mx == -INFINITY ? 0.0f : mx;
        float sum = 0.0f;
        for (size_t r = 0; r < rows; r++) {
            float e = expf(ST[r * ld + c] - mu);
            ST[r * ld + c] = e;
            sum += e;
        }
        corr[c] = expf(m[c] - mu);
        l[c] = l[c] * corr[c] + sum;
        m[c] = mx;
    }
}

static void scale_rows_generic(float *X, size_t ldx, const float *s, size_t rows, size_t n) {
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < n; j++) X[i * ldx + j] *= s[i];
}

static void exp_sub_cols_generic(float *ST, size_t ld, const float *L, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) ST[r * ld + c] = expf(ST[r * ld + c] - L[c]);
}

static void dsoftmax_cols_generic(float *dP, const float *P, size_t ld, const float *D, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) dP[r * ld + c] = P[r * ld + c] * (dP[r * ld + c] - D[c]);
}

static float softmax_row_generic(float *s, size_t n) {
    float mx = -INFINITY;
    for (size_t j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    float mu = mx == -INFINITY ? 0.0f : mx;
    float sum = 0.0f;
    for (size_t j = 0; j < n; j++) {
        s[j] = expf(s[j] - mu);
        sum += s[j];
    }
    if (sum > 0.0f) {
        float inv = 1.0f / sum;
        for (size_t j = 0; j < n; j++) s[j] *= inv;
    }
    return mx + logf(sum);
}

static void exp_sub_row_generic(float *s, size_t n, float L) {
    for (size_t j = 0; j < n; j++) s[j] = expf(s[j] - L);
}

static void dsoftmax_row_generic(float *dP, const float *P, size_t n, float D) {
    for (size_t j = 0; j < n; j++) dP[j] = P[j] * (dP[j] - D);
}

static float dot_generic(const float *a, const float *b, size_t n) {
    float s = 0.0f;
    for (size_t j = 0; j < n; j++) s += a[j] * b[j];
    return s;
}

static void scores_generic(float *s, const float *q, const float *const *keys, size_t n, size_t dk, float scale) {
    for (size_t j = 0; j < n; j++) s[j] = scale * dot_generic(q, keys[j], dk);
}

static void weighted_sum_generic(float *o, const float *p, const float *const *values, size_t n, size_t dk) {
    for (size_t c = 0; c < dk; c++) o[c] = 0.0f;
    for (size_t j = 0; j < n; j++)
        for (size_t c = 0; c < dk; c++) o[c] += p[j] * values[j][c];
}

const ff_attn_leaves_t ff_attn_leaves_generic = {
    gemm_generic,        softmax_cols_generic, scale_rows_generic,  exp_sub_cols_generic,
    dsoftmax_cols_generic, softmax_row_generic, exp_sub_row_generic, dsoftmax_row_generic,
    dot_generic,         ff_attn_philox_words_scalar, ff_attn_keep_block_scalar, ff_attn_transpose,
    scores_generic,      weighted_sum_generic,  ff_gemm_round_bf16,
};
