/* AVX2 leaves of dropout: 8 Philox blocks (32 elements) per step. */
#include "nn/dropout.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX2_BEGIN
#include "random/philox_avx2.h"

/* All-ones lanes where w >= thr (unsigned): max(w, thr) == w. */
static inline __m256i keep_lanes(__m256i w, __m256i thr) { return _mm256_cmpeq_epi32(_mm256_max_epu32(w, thr), w); }

/* Elements [4*b0, 4*b1) with b1 - b0 a multiple of 16 and 4*b1 <= n. thr < 2^32. */
void ff_dropout_blocks_avx2(float *y, const float *x, size_t b0, size_t b1, uint32_t thr, float scale, uint64_t seed,
                            uint64_t step, uint64_t site) {
    const __m256i vt = _mm256_set1_epi32((int)thr);
    const __m256 vs = _mm256_set1_ps(scale);
    for (size_t b = b0; b < b1; b += 8) {
        if ((b >> 32) != ((b + 7) >> 32)) { /* the 8 blocks straddle a 2^32 boundary: scalar */
            for (size_t q = b; q < b + 8; q++) {
                uint32_t w[4];
                ff_philox_block(w, q, seed, step, site);
                for (int j = 0; j < 4; j++) y[4 * q + j] = w[j] >= thr ? x[4 * q + j] * scale : 0.0f;
            }
            continue;
        }
        __m256i w[4];
        ff_philox8_avx2(w, b, seed, step, site);
        for (int q = 0; q < 4; q++) {
            size_t i = 4 * b + 8 * (size_t)q;
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
            _mm256_storeu_ps(y + i, _mm256_and_ps(v, _mm256_castsi256_ps(keep_lanes(w[q], vt))));
        }
    }
}

void ff_dropout_mask_blocks_avx2(uint8_t *keep, size_t b0, size_t b1, uint32_t thr, uint64_t seed, uint64_t step,
                                 uint64_t site) {
    const __m256i vt = _mm256_set1_epi32((int)thr);
    for (size_t b = b0; b < b1; b += 8) {
        if ((b >> 32) != ((b + 7) >> 32)) {
            for (size_t q = b; q < b + 8; q++) {
                uint32_t w[4];
                ff_philox_block(w, q, seed, step, site);
                for (int j = 0; j < 4; j++) keep[4 * q + j] = w[j] >= thr;
            }
            continue;
        }
        __m256i w[4];
        ff_philox8_avx2(w, b, seed, step, site);
        for (int q = 0; q < 4; q++) {
            /* lanes are 0 or -1: keep the low byte's low bit */
            __m256i k = _mm256_and_si256(keep_lanes(w[q], vt), _mm256_set1_epi32(1));
            __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(k), _mm256_extracti128_si256(k, 1));
            _mm_storel_epi64((__m128i *)(keep + 4 * b + 8 * (size_t)q), _mm_packus_epi16(p16, p16));
        }
    }
}

FF_TARGET_END
#endif
