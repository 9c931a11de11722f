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

/* ---- bf16 pairs (layout in gemm_internal.h) ---------------------------- */

/* 16 floats -> their bf16 bits in the low halves of the lanes: round to
 * nearest even, NaN kept quiet (gemm_bf16.c's bf16_bits, lane by lane). */
static inline __m512i bf16_bits16(__m512 x) {
    const __m512i u = _mm512_castps_si512(x), top = _mm512_srli_epi32(u, 16);
    const __m512i lsb = _mm512_and_si512(top, _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_or_epi32(r, nan, top, _mm512_set1_epi32(0x40));
}

/* 32 consecutive k of one vector -> its 16 pair slots. */
static inline __m512 pairs_of_32(const float *s) {
    const __m256i lo = _mm512_cvtepi32_epi16(bf16_bits16(_mm512_loadu_ps(s)));
    const __m256i hi = _mm512_cvtepi32_epi16(bf16_bits16(_mm512_loadu_ps(s + 16)));
    return _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
}

/* Vectors contiguous along k: 32 k of 16 vectors at a time become 16 rows
 * of slots, transposed so that slot s of the 16 vectors is one store. */
void ff_gemm_pack_rows_pairs_avx512(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {
    if (w != W || (W != 12 && W != 16 && W != 32)) {
        ff_gemm_pack_rows_pairs(dst, src, ld, kc, w, W);
        return;
    }
    const __mmask16 keep = (__mmask16)((1u << (W < 16 ? W : 16)) - 1);
    size_t p = 0;
    for (; p + 32 <= kc; p += 32) {
        for (size_t r0 = 0; r0 < W; r0 += 16) {
            const size_t rows = W - r0 < 16 ? W - r0 : 16;
            __m512 v[16];
            for (size_t i = 0; i < 16; i++) v[i] = i < rows ? pairs_of_32(src + (r0 + i) * ld + p) : _mm512_setzero_ps();
            transpose16(v);
            for (int q = 0; q < 16; q++) _mm512_mask_storeu_ps(dst + (p / 2 + q) * W + r0, keep, v[q]);
        }
    }
    if (p < kc) ff_gemm_pack_rows_pairs(dst + p / 2 * W, src + p, ld, kc - p, w, W);
}

/* x rounded to bf16 in place (still fp32 values): the emulated path's packers. */
void ff_gemm_round_bf16_avx512(float *x, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffffu : (__mmask16)((1u << (n - i)) - 1);
        const __m512i bits = bf16_bits16(_mm512_maskz_loadu_ps(m, x + i));
        _mm512_mask_storeu_epi32(x + i, m, _mm512_slli_epi32(bits, 16));
    }
}

/* Vectors are columns: rows 2s and 2s + 1 of the block interleave into the
 * slots of step s, 16 columns per vector op (any panel width: the last op
 * masked); missing columns load as zeros. */
static inline __mmask16 first_lanes(size_t n) { return (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1); }

void ff_gemm_pack_cols_pairs_avx512(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {
    for (size_t s = 0; s < (kc + 1) / 2; s++) {
        const float *r0 = src + 2 * s * ld, *r1 = r0 + ld;
        const int odd = 2 * s + 1 < kc;
        for (size_t j = 0; j < W; j += 16) {
            const __mmask16 m = first_lanes(w > j ? w - j : 0);
            const __m512i lo = bf16_bits16(_mm512_maskz_loadu_ps(m, r0 + j));
            const __m512i hi = odd ? bf16_bits16(_mm512_maskz_loadu_ps(m, r1 + j)) : _mm512_setzero_si512();
            _mm512_mask_storeu_epi32(dst + s * W + j, first_lanes(W - j), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
}

FF_TARGET_END

#endif
