/* AVX-512 packing for the 12x32 kernel: the layouts of pack.c, written with
 * 16x16 register transposes (panels contiguous along k: A as stored, B^T)
 * and straight vector copies (the other way round), since at per-head sizes
 * packing otherwise costs as much as the product. Anything else goes to the
 * portable routines. */
#include "gemm/gemm_internal.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX512_BEGIN

/* r[0..15] rows in, columns out: r[j] becomes column j. */
static inline void transpose16(__m512 r[16]) {
    __m512 a[16], b[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* b[4g+c], 128-bit lane l: column 4l+c of rows 4g..4g+3 */
    for (int g = 0; g < 4; g++) {
        __m512d a0 = _mm512_castps_pd(a[4 * g]), a1 = _mm512_castps_pd(a[4 * g + 1]);
        __m512d a2 = _mm512_castps_pd(a[4 * g + 2]), a3 = _mm512_castps_pd(a[4 * g + 3]);
        b[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        b[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        b[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        b[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    for (int c = 0; c < 4; c++) {
        __m512 e = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88), f = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xDD);
        __m512 g = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88), h = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(e, g, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(e, g, 0xDD);
        r[4 + c] = _mm512_shuffle_f32x4(f, h, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(f, h, 0xDD);
    }
}

/* Element (r, p) at src[r*ld + p] -> dst[p*W + r], W = 12, 16 or 32, full panel. */
static void pack_rows_t(float *dst, const float *src, size_t ld, size_t kc, size_t W) {
    const __mmask16 keep = (__mmask16)((1u << (W < 16 ? W : 16)) - 1);
    size_t p = 0;
    for (; p + 16 <= kc; p += 16) {
        for (size_t r0 = 0; r0 < W; r0 += 16) {
            const size_t rows = W - r0 < 16 ? W - r0 : 16;
            __m512 v[16];
            for (size_t i = 0; i < 16; i++)
                v[i] = i < rows ? _mm512_loadu_ps(src + (r0 + i) * ld + p) : _mm512_setzero_ps();
            transpose16(v);
            for (int q = 0; q < 16; q++) _mm512_mask_storeu_ps(dst + (p + q) * W + r0, keep, v[q]);
        }
    }
    for (; p < kc; p++)
        for (size_t r = 0; r < W; r++) dst[p * W + r] = src[r * ld + p];
}

void ff_gemm_pack_rows_avx512(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {
    if (w == W && (W == 12 || W == 16 || W == 32))
        pack_rows_t(dst, src, ld, kc, W);
    else
        ff_gemm_pack_rows(dst, src, ld, kc, w, W);
}

/* Element (p, j) at src[p*ld + j] -> dst[p*W + j]: one masked vector copy per
 * 16 floats of a k step; missing columns come out as zeros. */
void ff_gemm_pack_cols_avx512(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {
    if (W != 12 && W != 16 && W != 32) {
        ff_gemm_pack_cols(dst, src, ld, kc, w, W);
        return;
    }
    const size_t w0 = w < 16 ? w : 16, w1 = w > 16 ? w - 16 : 0;
    const __mmask16 m0 = (__mmask16)((1u << w0) - 1), m1 = (__mmask16)((1u << w1) - 1);
    const __mmask16 s0 = (__mmask16)((1u << (W < 16 ? W : 16)) - 1);
    for (size_t p = 0; p < kc; p++) {
        const float *s = src + p * ld;
        _mm512_mask_storeu_ps(dst + p * W, s0, _mm512_maskz_loadu_ps(m0, s));
        if (W == 32) _mm512_storeu_ps(dst + p * W + 16, _mm512_maskz_loadu_ps(m1, s + 16));
    }
}

FF_TARGET_END

#endif
