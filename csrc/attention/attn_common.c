/* Shared helpers of the attention drivers: leaf choice, transposes, masks
 * and dropout keep factors of one block. */
#include <math.h>
#include <stdlib.h>

#include "attention/attn_internal.h"
#include "gemm/gemm_internal.h"
#include "random/philox.h"
#include "runtime/runtime.h"

const ff_attn_leaves_t *ff_attn_leaves(void) {
#if defined(__x86_64__) || defined(_M_X64)
    ff_simd_t s = ff_simd_active();
    if (s >= FF_SIMD_AVX512) return &ff_attn_leaves_avx512;
    if (s >= FF_SIMD_AVX2) return &ff_attn_leaves_avx2;
#endif
    return &ff_attn_leaves_generic;
}

void ff_attn_round_bf16(float *x, size_t n) { ff_attn_leaves()->round_bf16(x, x, n); }

const ff_attn_leaves_t *ff_attn_leaves_for(const ff_attn_dims_t *d, ff_attn_leaves_t *copy) {
    const ff_attn_leaves_t *L = ff_attn_leaves();
    if (!d->bf16) return L;
    *copy = *L;
    copy->gemm = ff_attn_gemm_bf16();
    return copy;
}

/* ---- small helpers ------------------------------------------------------ */

void ff_attn_transpose_input(const ff_attn_leaves_t *L, float *dst, size_t ldd, const void *src, size_t lds,
                             size_t rows, size_t cols, const ff_attn_dims_t *d, float *stage) {
    if (d->bf16_inputs)
        L->transpose(dst, ldd, ff_bf16_widen_rows(stage, src, lds, rows, cols), cols, rows, cols);
    else
        L->transpose(dst, ldd, src, lds, rows, cols);
}

void ff_attn_philox_words_scalar(uint32_t *w, uint64_t i0, size_t n, uint64_t seed, uint64_t step, uint64_t site) {
    size_t j = 0;
    while (j < n) {
        uint64_t i = i0 + j;
        uint32_t r[4];
        ff_philox_block(r, i >> 2, seed, step, site);
        for (unsigned t = (unsigned)(i & 3); t < 4 && j < n; t++) w[j++] = r[t];
    }
}

void ff_attn_transpose(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols) {
    /* 8 x 8 tiles keep both sides within a few cache lines */
    for (size_t i0 = 0; i0 < rows; i0 += 8) {
        size_t i1 = i0 + 8 < rows ? i0 + 8 : rows;
        for (size_t j0 = 0; j0 < cols; j0 += 8) {
            size_t j1 = j0 + 8 < cols ? j0 + 8 : cols;
            for (size_t i = i0; i < i1; i++)
                for (size_t j = j0; j < j1; j++) dst[j * ldd + i] = src[i * lds + j];
        }
    }
}

void ff_attn_keep_block_rows(float *F, size_t ld, uint32_t *w, uint64_t i00, uint64_t qstride, size_t nq, size_t nk,
                             uint32_t thr, float keep, uint64_t seed, uint64_t step, uint64_t site,
                             void (*words)(uint32_t *, uint64_t, size_t, uint64_t, uint64_t, uint64_t)) {
    for (size_t c = 0; c < nq; c++) {
        words(w, i00 + c * qstride, nk, seed, step, site);
        for (size_t r = 0; r < nk; r++) F[r * ld + c] = w[r] >= thr ? keep : 0.0f;
    }
}

void ff_attn_keep_block_scalar(float *F, size_t ld, uint32_t *w, uint64_t i00, uint64_t qstride, size_t nq,
                               size_t nk, uint32_t thr, float keep, uint64_t seed, uint64_t step, uint64_t site) {
    ff_attn_keep_block_rows(F, ld, w, i00, qstride, nq, nk, thr, keep, seed, step, site, ff_attn_philox_words_scalar);
}

void ff_attn_keep_block(float *F, size_t ld, uint32_t *w, const ff_attn_leaves_t *L, const ff_attn_dims_t *d,
                        size_t bh, size_t q0, size_t nq, size_t k0, size_t nk) {
    /* p < 1 here, so the threshold fits 32 bits */
    uint32_t thr = (uint32_t)ff_dropout_threshold(d->dropout_p);
    float keep = (float)(1.0 / (1.0 - d->dropout_p)); /* in double, cast once: as the reference */
    uint64_t i00 = ((uint64_t)bh * d->Tq + q0) * d->Tk + k0;
    L->keep_block(F, ld, w, i00, d->Tk, nq, nk, thr, keep, d->seed, d->step, d->site);
}

void ff_attn_mask_block(float *ST, size_t ld, const uint8_t *kpm, int causal, size_t q0, size_t nq, size_t k0,
                        size_t nk) {
    for (size_t r = 0; r < nk; r++) {
        float *row = ST + r * ld;
        size_t hide = 0; /* queries c < hide of this key's row are hidden */
        if (kpm && kpm[k0 + r]) hide = nq;
        else if (causal && k0 + r > q0) hide = k0 + r - q0 < nq ? k0 + r - q0 : nq;
        for (size_t c = 0; c < hide; c++) row[c] = -INFINITY;
    }
}
