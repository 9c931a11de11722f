/* Pieces shared by the attention drivers and their per-ISA leaves. Not part
 * of the public API (see attention.h). */
#ifndef FF_ATTN_INTERNAL_H
#define FF_ATTN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "attention/attention.h"

/* Query and key block sizes of the flash kernels. A block's scores are held
 * transposed, S^T (BK keys x BQ queries), so the softmax statistics of the
 * BQ queries are vectors and every product below has a contiguous B operand.
 * The forward steps over keys FF_ATTN_BK_FWD at a time: its P V product then
 * runs 128 deep, halving the accumulator traffic and O rescales per key (the
 * backward measured no better with 128 of either). */
#define FF_ATTN_BQ 64
#define FF_ATTN_BK 64
#define FF_ATTN_BK_FWD 128

/* The leaves, one set per instruction set (attn_leaf_generic.c, and attn_leaf_simd.h
 * for AVX2 and AVX-512).
 * None of them holds an OpenMP region. */
typedef struct {
    /* C (m, n; ldc) = (accumulate ? C : 0) + alpha * A @ B, where A's element
     * (i, p) is A[i*ars + p*acs] (so A^T is free) and B is (k, n), row-major
     * with leading dimension ldb. Each C element is summed over p in order.
     * A and B are floats; the bf16 gemm (below) also takes either as bf16
     * values (uint16_t) flagged in storage (FF_GEMM_A_BF16, FF_GEMM_B_BF16 of
     * gemm.h: flash inputs stored in bf16), which the fp32 leaves never get. */
    void (*gemm)(float *C, size_t ldc, const void *A, size_t ars, size_t acs, const void *B, size_t ldb, size_t m,
                 size_t n, size_t k, float alpha, int accumulate, int storage);
    /* Online softmax step over the columns (queries) of ST (rows keys, ld):
     * mx[c] = max(m[c], max_r ST[r][c]); mu = mx, or 0 where mx = -inf;
     * ST[r][c] = exp(ST[r][c] - mu); corr[c] = exp(m[c] - mu);
     * l[c] = l[c]*corr[c] + sum_r ST[r][c] (rows in order); m[c] = mx.
     * cols is rounded up to the vector width: m, l, corr, ST are padded. */
    void (*softmax_cols)(float *ST, size_t ld, float *m, float *l, float *corr, size_t rows, size_t cols);
    /* X[i][:n] *= s[i] for i < rows. */
    void (*scale_rows)(float *X, size_t ldx, const float *s, size_t rows, size_t n);
    /* ST[r][c] = exp(ST[r][c] - L[c]) (L = +inf gives 0). cols padded. */
    void (*exp_sub_cols)(float *ST, size_t ld, const float *L, size_t rows, size_t cols);
    /* dS = P * (dP - D[c]) into dP. cols padded. */
    void (*dsoftmax_cols)(float *dP, const float *P, size_t ld, const float *D, size_t rows, size_t cols);
    /* Row softmax in place over n (-inf entries masked), returning the
     * log-sum-exp (-inf and a zero row when all are masked). */
    float (*softmax_row)(float *s, size_t n);
    /* s[j] = exp(s[j] - L) (L = +inf gives 0). */
    void (*exp_sub_row)(float *s, size_t n, float L);
    /* dP[j] = P[j] * (dP[j] - D). */
    void (*dsoftmax_row)(float *dP, const float *P, size_t n, float D);
    /* sum_j a[j] * b[j] in a fixed order. */
    float (*dot)(const float *a, const float *b, size_t n);
    /* w[j] = Philox dropout word of flat index i0 + j, j < n. */
    void (*philox_words)(uint32_t *w, uint64_t i0, size_t n, uint64_t seed, uint64_t step, uint64_t site);
    /* Keep factors of a block in the S^T layout: F[r*ld + c] = keep if the
     * word of flat index i00 + c*qstride + r is >= thr, else 0 (r < nk,
     * c < nq); w is scratch of nk + 64 words. */
    void (*keep_block)(float *F, size_t ld, uint32_t *w, uint64_t i00, uint64_t qstride, size_t nq, size_t nk,
                       uint32_t thr, float keep, uint64_t seed, uint64_t step, uint64_t site);
    /* dst (cols, rows; ldd) = src^T where src is (rows, cols) with row stride lds. */
    void (*transpose)(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols);
    /* s[j] = scale * dot(q, keys[j], dk) for j < n, each summed as `dot` sums it. */
    void (*scores)(float *s, const float *q, const float *const *keys, size_t n, size_t dk, float scale);
    /* o[c] = sum_j p[j] * values[j][c] for c < dk, over j < n in order. */
    void (*weighted_sum)(float *o, const float *p, const float *const *values, size_t n, size_t dk);
    /* dst[j] = src[j] rounded to bf16 (nearest even, as ff_bf16_round), j < n; dst may be src. */
    void (*round_bf16)(float *dst, const float *src, size_t n);
} ff_attn_leaves_t;

extern const ff_attn_leaves_t ff_attn_leaves_generic;
#if defined(__x86_64__) || defined(_M_X64)
extern const ff_attn_leaves_t ff_attn_leaves_avx2;
extern const ff_attn_leaves_t ff_attn_leaves_avx512;
#endif

/* The AVX2 row leaves, which the AVX-512 table shares (memory-bound: wider
 * vectors buy nothing there), and AVX-512's own dropout leaves
 * (attn_dropout_avx512.c). */
#if defined(__x86_64__) || defined(_M_X64)
void ff_attn_scores_avx2(float *s, const float *q, const float *const *keys, size_t n, size_t dk, float scale);
void ff_attn_weighted_sum_avx2(float *o, const float *p, const float *const *values, size_t n, size_t dk);
void ff_attn_philox_words_avx512(uint32_t *w, uint64_t i0, size_t n, uint64_t seed, uint64_t step, uint64_t site);
void ff_attn_keep_block_avx512(float *F, size_t ld, uint32_t *w, uint64_t i00, uint64_t qstride, size_t nq, size_t nk,
                               uint32_t thr, float keep, uint64_t seed, uint64_t step, uint64_t site);
#endif

/* The leaves of the active instruction set. */
const ff_attn_leaves_t *ff_attn_leaves(void);

/* The gemm leaf's signature, and its bf16 twin (attn_gemm_bf16.c): A and B
 * rounded to bf16 (stored bf16 values read as they are), sums in fp32, on the
 * active bf16 path; A must have acs == 1 or ars == 1 (every product of the
 * flash kernels does). */
typedef void (*ff_attn_gemm_fn)(float *C, size_t ldc, const void *A, size_t ars, size_t acs, const void *B,
                                size_t ldb, size_t m, size_t n, size_t k, float alpha, int accumulate, int storage);
ff_attn_gemm_fn ff_attn_gemm_bf16(void);

/* The leaves a kernel on d runs: the active set, with the bf16 gemm when
 * d->bf16 (filled into *copy). */
const ff_attn_leaves_t *ff_attn_leaves_for(const ff_attn_dims_t *d, ff_attn_leaves_t *copy);

/* L->transpose of a flash input: dst (cols, rows; ldd) = src^T as floats,
 * src (rows, cols) with row stride lds elements; bf16 values go through
 * stage (rows * cols floats) widened. */
void ff_attn_transpose_input(const ff_attn_leaves_t *L, float *dst, size_t ldd, const void *src, size_t lds,
                             size_t rows, size_t cols, const ff_attn_dims_t *d, float *stage);

/* The keep_block leaf through philox_words, one query at a time. */
void ff_attn_keep_block_rows(float *F, size_t ld, uint32_t *w, uint64_t i00, uint64_t qstride, size_t nq, size_t nk,
                             uint32_t thr, float keep, uint64_t seed, uint64_t step, uint64_t site,
                             void (*words)(uint32_t *, uint64_t, size_t, uint64_t, uint64_t, uint64_t));
void ff_attn_keep_block_scalar(float *F, size_t ld, uint32_t *w, uint64_t i00, uint64_t qstride, size_t nq,
                               size_t nk, uint32_t thr, float keep, uint64_t seed, uint64_t step, uint64_t site);

/* Philox words in the scalar generator (shared by the generic and AVX2 leaves). */
void ff_attn_philox_words_scalar(uint32_t *w, uint64_t i0, size_t n, uint64_t seed, uint64_t step, uint64_t site);

/* dst (cols, rows; ldd) = src^T where src is (rows, cols) with row stride lds. */
void ff_attn_transpose(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols);

/* Keep factors of a block in the S^T layout: F[r*ld + c] = 1/(1-p) or 0 for
 * key k0 + r (r < nk) and query q0 + c (c < nq) of head bh; w is scratch of
 * nk + 8 words. */
void ff_attn_keep_block(float *F, size_t ld, uint32_t *w, const ff_attn_leaves_t *L, const ff_attn_dims_t *d,
                        size_t bh, size_t q0, size_t nq, size_t k0, size_t nk);

/* Mask a block of S^T (keys k0.., queries q0..) with -inf: padded keys
 * (kpm row of the batch, or NULL) and, when causal, key > query. */
void ff_attn_mask_block(float *ST, size_t ld, const uint8_t *kpm, int causal, size_t q0, size_t nq, size_t k0,
                        size_t nk);

#endif
