/* AVX2 packing for the 6x16 kernel: the layouts of pack.c, written with 8x8
 * register transposes (panels contiguous along k: A as stored, B^T) and
 * vector copies (the other way round). Anything else goes to the portable
 * routines. */
#include "gemm/gemm_internal.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX2_BEGIN

/* r[0..7] rows in, columns out. */
static inline void transpose8(__m256 r[8]) {
    __m256 a[8], b[8];
    for (int i = 0; i < 4; i++) {
        a[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* b[4g+c], 128-bit lane l: column 4l+c of rows 4g..4g+3 */
    for (int g = 0; g < 2; g++) {
        __m256d a0 = _mm256_castps_pd(a[4 * g]), a1 = _mm256_castps_pd(a[4 * g + 1]);
        __m256d a2 = _mm256_castps_pd(a[4 * g + 2]), a3 = _mm256_castps_pd(a[4 * g + 3]);
        b[4 * g + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(a0, a2));
        b[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a0, a2));
        b[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(a1, a3));
        b[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(a1, a3));
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(b[c], b[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(b[c], b[4 + c], 0x31);
    }
}

/* Element (r, p) at src[r*ld + p] -> dst[p*W + r], W = 6 or 16, full panel. */
static void pack_rows_t(float *dst, const float *src, size_t ld, size_t kc, size_t W) {
    size_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        for (size_t r0 = 0; r0 < W; r0 += 8) {
            const size_t rows = W - r0 < 8 ? W - r0 : 8;
            __m256 v[8];
            for (size_t i = 0; i < 8; i++)
                v[i] = i < rows ? _mm256_loadu_ps(src + (r0 + i) * ld + p) : _mm256_setzero_ps();
            transpose8(v);
            if (rows == 8) {
                for (int q = 0; q < 8; q++) _mm256_storeu_ps(dst + (p + q) * W + r0, v[q]);
            } else { /* W = 6: 4 + 2 floats per k step */
                for (int q = 0; q < 8; q++) {
                    float *d = dst + (p + q) * W + r0;
                    _mm_storeu_ps(d, _mm256_castps256_ps128(v[q]));
                    _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(v[q], 1));
                }
            }
        }
    }
    for (; p < kc; p++)
        for (size_t r = 0; r < W; r++) dst[p * W + r] = src[r * ld + p];
}

void ff_gemm_pack_rows_avx2(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {
    if (w == W && (W == 6 || W == 16))
        pack_rows_t(dst, src, ld, kc, W);
    else
        ff_gemm_pack_rows(dst, src, ld, kc, w, W);
}

/* Element (p, j) at src[p*ld + j] -> dst[p*W + j]: vector copies of full panels. */
void ff_gemm_pack_cols_avx2(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {
    if (w != W || W != 16) {
        ff_gemm_pack_cols(dst, src, ld, kc, w, W);
        return;
    }
    for (size_t p = 0; p < kc; p++) {
        const float *s = src + p * ld;
        _mm256_store_ps(dst + p * 16, _mm256_loadu_ps(s));
        _mm256_store_ps(dst + p * 16 + 8, _mm256_loadu_ps(s + 8));
    }
}

/* x rounded to bf16 in place (ff_bf16_round lane by lane: nearest even, NaN
 * kept quiet), for the emulated path's packers. */
void ff_gemm_round_bf16_avx2(float *x, size_t n) {
    const __m256i one = _mm256_set1_epi32(1), half = _mm256_set1_epi32(0x7fff);
    const __m256i top = _mm256_set1_epi32((int)0xffff0000u), quiet = _mm256_set1_epi32(0x400000);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256i u = _mm256_castps_si256(v);
        const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
        const __m256i r = _mm256_and_si256(_mm256_add_epi32(u, _mm256_add_epi32(lsb, half)), top);
        const __m256i nan = _mm256_or_si256(_mm256_and_si256(u, top), quiet);
        _mm256_storeu_ps(x + i, _mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(nan),
                                                 _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    }
    ff_gemm_round_bf16(x + i, n - i);
}

FF_TARGET_END

#endif
