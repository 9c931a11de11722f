/* AVX-512's own attention leaves, beside the shared ones of attn_leaf_simd.h:
 * dropout words from the 16-lane Philox. */
#include "attention/attn_internal.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX512_BEGIN
#include "random/philox_avx512.h"

/* 16 Philox blocks (64 words) per call; the words around [i0, i0 + n) that
 * fall outside are computed and dropped. */
void ff_attn_philox_words_avx512(uint32_t *w, uint64_t i0, size_t n, uint64_t seed, uint64_t step, uint64_t site) {
    uint64_t b = i0 >> 2, end = i0 + n;
    size_t j = 0;
    while (j < n) {
        __m512i v[4];
        uint32_t buf[64];
        ff_philox16_avx512(v, b, seed, step, site);
        for (int t = 0; t < 4; t++) _mm512_storeu_si512((void *)(buf + 16 * t), v[t]);
        uint64_t e0 = b * 4; /* flat index of buf[0] */
        uint64_t from = i0 + j, to = e0 + 64 < end ? e0 + 64 : end;
        for (uint64_t i = from; i < to; i++) w[j++] = buf[i - e0];
        b += 16;
    }
}

/* Keep factors straight in the S^T layout: lane c of a 16-lane Philox call
 * runs query c's counter, and one call's four output words are four
 * consecutive keys, so a call fills a (4 keys x 16 queries) tile with no
 * transpose. Needs every query's first index aligned to a Philox block
 * (i00 and qstride multiples of 4); otherwise one query at a time. */
void ff_attn_keep_block_avx512(float *F, size_t ld, uint32_t *w, uint64_t i00, uint64_t qstride, size_t nq, size_t nk,
                                uint32_t thr, float keep, uint64_t seed, uint64_t step, uint64_t site) {
    if ((i00 | qstride) & 3) {
        ff_attn_keep_block_rows(F, ld, w, i00, qstride, nq, nk, thr, keep, seed, step, site, ff_attn_philox_words_avx512);
        return;
    }
    const __m512i c2i = _mm512_set1_epi32((int)(uint32_t)site), c3i = _mm512_set1_epi32((int)(uint32_t)step);
    const __m512i vthr = _mm512_set1_epi32((int)thr);
    const __m512 vkeep = _mm512_set1_ps(keep);
    const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    for (size_t c0 = 0; c0 < nq; c0 += 16) {
        /* Philox block of key 0 for queries c0 .. c0+15, as 2 x 8 64-bit lanes */
        __m512i qs = _mm512_set1_epi64((long long)(qstride >> 2));
        __m512i b_lo = _mm512_add_epi64(_mm512_set1_epi64((long long)((i00 >> 2) + c0 * (qstride >> 2))),
                                        _mm512_mullo_epi64(lane, qs));
        __m512i b_hi = _mm512_add_epi64(b_lo, _mm512_slli_epi64(qs, 3));
        for (size_t r0 = 0; r0 < nk; r0 += 4) {
            __m512i off = _mm512_set1_epi64((long long)(r0 >> 2));
            __m512i lo = _mm512_add_epi64(b_lo, off), hi = _mm512_add_epi64(b_hi, off);
            __m512i c0v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(lo)), _mm512_cvtepi64_epi32(hi), 1);
            __m512i c1v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_srli_epi64(lo, 32))),
                                             _mm512_cvtepi64_epi32(_mm512_srli_epi64(hi, 32)), 1);
            __m512i c2v = c2i, c3v = c3i;
            ff_philox10_x16(&c0v, &c1v, &c2v, &c3v, seed);
            const __m512i wv[4] = {c0v, c1v, c2v, c3v}; /* word t = key r0 + t */
            for (size_t t = 0; t < 4 && r0 + t < nk; t++) {
                __mmask16 kp = _mm512_cmpge_epu32_mask(wv[t], vthr);
                _mm512_storeu_ps(F + (r0 + t) * ld + c0, _mm512_maskz_mov_ps(kp, vkeep));
            }
        }
    }
}

FF_TARGET_END
#endif
