/* The bf16 pair panels of the AVX512-BF16 and AMX kernels (layout in
 * gemm_internal.h; AMX's A in its own, below), compiled for AVX-512 with
 * AVX512-BF16 only, by pack_pairs_avx512bf16.c (see simd/avx2.h). Each
 * packer reads floats (rounded to bf16 as they are read) or bf16 values
 * (uint16_t, taken as they are): one body, the source kind a constant of
 * each exported version. */

#define AI static inline __attribute__((always_inline))

/* The address of element `off` of a source of floats or bf16 values. */
AI const void *at(const void *src, size_t off, const int bf16) {
    return (const char *)src + off * (bf16 ? sizeof(uint16_t) : sizeof(float));
}

/* The bf16 bits of the `lanes` of 16 source values in the low halves of the lanes (0 elsewhere). */
AI __m512i bits_of(const void *s, __mmask16 lanes, const int bf16) {
    if (bf16) return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes, s));
    return ffv_bf16_bits(_mm512_maskz_loadu_ps(lanes, s));
}

/* n consecutive k of one vector (at most 32 read; zeros past n) -> its 16 pair slots. */
AI __m512 pairs_of(const void *s, size_t n, const int bf16) {
    if (bf16) /* the 32 values are the 16 slots, as they lie */
        return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(n >= 32 ? ~(__mmask32)0 : ((__mmask32)1 << n) - 1, s));
    const __m256i lo = ffv_to_bf16(_mm512_maskz_loadu_ps(ffv_first(n), s));
    const __m256i hi = ffv_to_bf16(_mm512_maskz_loadu_ps(ffv_first(n > 16 ? n - 16 : 0), at(s, 16, 0)));
    return _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
}

/* Slot s of `lanes` columns: elements 2s (low half) and 2s + 1 (high half,
 * when odd) of k, at rows r0 and r0 + ld; missing columns are zeros. */
AI __m512 pair_row(const void *r0, size_t ld, int odd, __mmask16 lanes, const int bf16) {
    const __m512i lo = bits_of(r0, lanes, bf16);
    const __m512i hi = odd ? bits_of(at(r0, ld, bf16), lanes, bf16) : _mm512_setzero_si512();
    return _mm512_castsi512_ps(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
}

/* Vectors contiguous along k: 32 k of 16 vectors at a time become 16 rows
 * of slots, transposed so that slot s of the 16 vectors is one store. */
AI void pack_rows_pairs(float *dst, const void *src, size_t ld, size_t kc, size_t w, size_t W, const int bf16) {
    for (size_t p = 0; p < kc; p += 32) {
        const size_t n = kc - p < 32 ? kc - p : 32, slots = (n + 1) / 2;
        for (size_t r0 = 0; r0 < W; r0 += 16) {
            __m512 v[16];
            for (size_t i = 0; i < 16; i++)
                v[i] = r0 + i < w ? pairs_of(at(src, (r0 + i) * ld + p, bf16), n, bf16) : _mm512_setzero_ps();
            ffv_transpose(v);
            for (size_t q = 0; q < slots; q++)
                _mm512_mask_storeu_ps(dst + (p / 2 + q) * W + r0, ffv_first(W - r0), v[q]);
        }
    }
}

/* 32 slots from 32 bf16 values of each of two rows (r1 the high halves):
 * the words interleave within 128-bit lanes, then the lanes' quarters go in
 * column order. */
AI void interleave_rows32(float *dst, const uint16_t *r0, const uint16_t *r1) {
    const __m512i a = _mm512_loadu_si512(r0), b = _mm512_loadu_si512(r1);
    const __m512i lo = _mm512_unpacklo_epi16(a, b), hi = _mm512_unpackhi_epi16(a, b); /* columns 8q..8q+3, 8q+4.. */
    _mm512_storeu_si512(dst, _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi));
    _mm512_storeu_si512(dst + 16, _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), hi));
}

/* Vectors are columns: rows 2s and 2s + 1 of the block interleave into the
 * slots of step s, 16 columns per vector op (any panel width: the last op
 * masked); missing columns load as zeros. Whole panels of bf16 values 32
 * wide go 32 columns at a time (2-3x faster). */
AI void pack_cols_pairs(float *dst, const void *src, size_t ld, size_t kc, size_t w, size_t W, const int bf16) {
    for (size_t s = 0; s < (kc + 1) / 2; s++) {
        const void *r0 = at(src, 2 * s * ld, bf16);
        const int odd = 2 * s + 1 < kc;
        if (bf16 && odd && w == W && W % 32 == 0) {
            for (size_t j = 0; j < W; j += 32)
                interleave_rows32(dst + s * W + j, at(r0, j, 1), at(r0, ld + j, 1));
            continue;
        }
        for (size_t j = 0; j < W; j += 16)
            _mm512_mask_storeu_ps(dst + s * W + j, ffv_first(W - j),
                                  pair_row(at(r0, j, bf16), ld, odd, ffv_first(w > j ? w - j : 0), bf16));
    }
}

/* The AMX kernel's A panels (kernel_amx.c), MR = 32 rows each: per 32 k, the
 * rows' 16 pair slots one after the other ([ks / 16][MR][16] slots, ks =
 * slots(kc) padded to 16), so each 16-row A tile is 1 KiB in one piece.
 * Rows past mc and k past kc are zeros. */
AI void pack_a_amx(float *dst, const void *src, size_t ld, int trans, size_t mc, size_t kc, const int bf16) {
    const size_t MR = FF_GEMM_AMX_MR, chunks = (kc + 31) / 32, ks = 16 * chunks, rows = (mc + MR - 1) / MR * MR;
    if (!trans) { /* row i contiguous along k */
        for (size_t i = 0; i < rows; i++) {
            float *d = dst + i / MR * MR * ks + i % MR * 16;
            for (size_t c = 0; c < chunks; c++)
                _mm512_storeu_ps(d + c * MR * 16, i < mc ? pairs_of(at(src, i * ld + 32 * c, bf16), kc - 32 * c, bf16)
                                                         : _mm512_setzero_ps());
        }
        return;
    }
    /* Row i is column i of the source: 16 slots x 16 columns at a time, then
     * transposed; a chunk's 32 source rows are read across the whole block. */
    for (size_t c = 0; c < chunks; c++)
        for (size_t i0 = 0; i0 < rows; i0 += 16) {
            const __mmask16 lanes = ffv_first(mc > i0 ? mc - i0 : 0);
            __m512 v[16];
            for (size_t q = 0; q < 16; q++) {
                const size_t p = 32 * c + 2 * q;
                v[q] = p < kc ? pair_row(at(src, p * ld + i0, bf16), ld, p + 1 < kc, lanes, bf16) : _mm512_setzero_ps();
            }
            ffv_transpose(v);
            float *d = dst + i0 / MR * MR * ks + c * MR * 16 + i0 % MR * 16;
            for (int i = 0; i < 16; i++) _mm512_storeu_ps(d + 16 * i, v[i]);
        }
}

/* The exported packers, of floats and of bf16 values. */
#define PACKERS(suffix, type, bf16)                                                                               \
    void ff_gemm_pack_rows_pairs##suffix(float *dst, const type *src, size_t ld, size_t kc, size_t w, size_t W) { \
        pack_rows_pairs(dst, src, ld, kc, w, W, bf16);                                                            \
    }                                                                                                             \
    void ff_gemm_pack_cols_pairs##suffix(float *dst, const type *src, size_t ld, size_t kc, size_t w, size_t W) { \
        pack_cols_pairs(dst, src, ld, kc, w, W, bf16);                                                            \
    }                                                                                                             \
    void ff_gemm_pack_a_amx##suffix(float *dst, const type *src, size_t ld, int trans, size_t mc, size_t kc) {    \
        pack_a_amx(dst, src, ld, trans, mc, kc, bf16);                                                            \
    }
PACKERS(, float, 0)
PACKERS(_bf16, uint16_t, 1)
