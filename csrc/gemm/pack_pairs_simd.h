/* The bf16 pair panels of the AVX512-BF16 kernel (layout in gemm_internal.h),
 * compiled for AVX-512 only by pack_pairs_avx512.c (see simd/avx2.h). */

/* 32 consecutive k of one vector -> its 16 pair slots. */
static inline __m512 pairs_of_32(const float *s) {
    const __m256i lo = _mm512_cvtepi32_epi16(ffv_bf16_bits(_mm512_loadu_ps(s)));
    const __m256i hi = _mm512_cvtepi32_epi16(ffv_bf16_bits(_mm512_loadu_ps(s + 16)));
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
            ffv_transpose(v);
            for (int q = 0; q < 16; q++) _mm512_mask_storeu_ps(dst + (p / 2 + q) * W + r0, keep, v[q]);
        }
    }
    if (p < kc) ff_gemm_pack_rows_pairs(dst + p / 2 * W, src + p, ld, kc - p, w, W);
}

/* Vectors are columns: rows 2s and 2s + 1 of the block interleave into the
 * slots of step s, 16 columns per vector op (any panel width: the last op
 * masked); missing columns load as zeros. */
void ff_gemm_pack_cols_pairs_avx512(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {
    for (size_t s = 0; s < (kc + 1) / 2; s++) {
        const float *r0 = src + 2 * s * ld, *r1 = r0 + ld;
        const int odd = 2 * s + 1 < kc;
        for (size_t j = 0; j < W; j += 16) {
            const __mmask16 m = ffv_first(w > j ? w - j : 0);
            const __m512i lo = ffv_bf16_bits(_mm512_maskz_loadu_ps(m, r0 + j));
            const __m512i hi = odd ? ffv_bf16_bits(_mm512_maskz_loadu_ps(m, r1 + j)) : _mm512_setzero_si512();
            _mm512_mask_storeu_epi32(dst + s * W + j, ffv_first(W - j), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
}
