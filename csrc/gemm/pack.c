/* Packing: copy a block of op(A) or op(B) into the panel layout the
 * micro-kernel streams, [kc][W] per panel, zero-padding missing rows/columns
 * (so edge tiles run the full kernel). Transposes are absorbed here: every
 * NN/NT/TN/TT case ends in the same layout. Fixed widths get their own
 * instantiation so the compiler unrolls and vectorises the inner copies. */
#include <string.h>

#include "gemm/gemm_internal.h"

/* src element (r, p) at src[r*ld + p]; dst[p*W + r]. Walk k in chunks of 8 so
 * each source row is read sequentially and the written chunk stays in L1. */
static inline void pack_rows_w(float *restrict dst, const float *restrict src, size_t ld, size_t kc, size_t w,
                               const size_t W) {
    size_t p = 0;
    if (w == W) {
        for (; p + 8 <= kc; p += 8) {
            for (size_t r = 0; r < W; r++) {
                const float *s = src + r * ld + p;
                for (size_t q = 0; q < 8; q++) dst[(p + q) * W + r] = s[q];
            }
        }
    }
    for (; p < kc; p++) {
        size_t r = 0;
        for (; r < w; r++) dst[p * W + r] = src[r * ld + p];
        for (; r < W; r++) dst[p * W + r] = 0.0f;
    }
}

/* src element (p, j) at src[p*ld + j]; dst[p*W + j]: one contiguous copy per k. */
static inline void pack_cols_w(float *restrict dst, const float *restrict src, size_t ld, size_t kc, size_t w,
                               const size_t W) {
    if (w == W) {
        for (size_t p = 0; p < kc; p++)
            for (size_t j = 0; j < W; j++) dst[p * W + j] = src[p * ld + j];
        return;
    }
    for (size_t p = 0; p < kc; p++) {
        size_t j = 0;
        for (; j < w; j++) dst[p * W + j] = src[p * ld + j];
        for (; j < W; j++) dst[p * W + j] = 0.0f;
    }
}

void ff_gemm_pack_rows(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {
    switch (W) {
    case 4: pack_rows_w(dst, src, ld, kc, w, 4); break;
    case 6: pack_rows_w(dst, src, ld, kc, w, 6); break;
    case 8: pack_rows_w(dst, src, ld, kc, w, 8); break;
    case 12: pack_rows_w(dst, src, ld, kc, w, 12); break;
    case 14: pack_rows_w(dst, src, ld, kc, w, 14); break;
    case 16: pack_rows_w(dst, src, ld, kc, w, 16); break;
    case 32: pack_rows_w(dst, src, ld, kc, w, 32); break;
    default: pack_rows_w(dst, src, ld, kc, w, W); break;
    }
}

void ff_gemm_pack_cols(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {
    switch (W) {
    case 4: pack_cols_w(dst, src, ld, kc, w, 4); break;
    case 6: pack_cols_w(dst, src, ld, kc, w, 6); break;
    case 8: pack_cols_w(dst, src, ld, kc, w, 8); break;
    case 12: pack_cols_w(dst, src, ld, kc, w, 12); break;
    case 14: pack_cols_w(dst, src, ld, kc, w, 14); break;
    case 16: pack_cols_w(dst, src, ld, kc, w, 16); break;
    case 32: pack_cols_w(dst, src, ld, kc, w, 32); break;
    default: pack_cols_w(dst, src, ld, kc, w, W); break;
    }
}
