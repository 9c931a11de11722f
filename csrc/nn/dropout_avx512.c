/* AVX-512 leaves of dropout: 16 Philox blocks (64 elements) per step. */
#include "nn/dropout.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX512_BEGIN
#include "random/philox_avx512.h"

/* Elements [4*b0, 4*b1) with b1 - b0 a multiple of 16 and 4*b1 <= n. thr < 2^32. */
void ff_dropout_blocks_avx512(float *y, const float *x, size_t b0, size_t b1, uint32_t thr, float scale,
                              uint64_t seed, uint64_t step, uint64_t site) {
    const __m512i vt = _mm512_set1_epi32((int)thr);
    const __m512 vs = _mm512_set1_ps(scale);
    for (size_t b = b0; b < b1; b += 16) {
        __m512i w[4];
        ff_philox16_avx512(w, b, seed, step, site);
        for (int q = 0; q < 4; q++) {
            size_t i = 4 * b + 16 * (size_t)q;
            __mmask16 keep = _mm512_cmpge_epu32_mask(w[q], vt);
            _mm512_storeu_ps(y + i, _mm512_maskz_mul_ps(keep, _mm512_loadu_ps(x + i), vs));
        }
    }
}

void ff_dropout_mask_blocks_avx512(uint8_t *keep, size_t b0, size_t b1, uint32_t thr, uint64_t seed, uint64_t step,
                                   uint64_t site) {
    const __m512i vt = _mm512_set1_epi32((int)thr);
    for (size_t b = b0; b < b1; b += 16) {
        __m512i w[4];
        ff_philox16_avx512(w, b, seed, step, site);
        for (int q = 0; q < 4; q++) {
            __mmask16 k = _mm512_cmpge_epu32_mask(w[q], vt);
            _mm_storeu_si128((__m128i *)(keep + 4 * b + 16 * (size_t)q), _mm_maskz_set1_epi8(k, 1));
        }
    }
}

FF_TARGET_END
#endif
