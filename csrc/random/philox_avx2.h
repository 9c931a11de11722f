/* Philox4x32-10 for 8 blocks at once (32 dropout words), AVX2. Include
 * inside an FF_TARGET_AVX2_BEGIN ... FF_TARGET_END region after
 * <immintrin.h>; the words are those of ff_philox_block (random/philox.h). */
#ifndef FF_PHILOX_AVX2_H
#define FF_PHILOX_AVX2_H

#include "random/philox.h"

/* hi and lo 32 bits of the 8 products a * m (m the same in every lane). */
static inline void ff_mulhilo8(__m256i *hi, __m256i *lo, __m256i a, __m256i m) {
    __m256i e = _mm256_mul_epu32(a, m);                        /* even lanes, 64-bit products */
    __m256i o = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m); /* odd lanes */
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(e, 32), o, 0xAA);
    *lo = _mm256_mullo_epi32(a, m);
}

/* ff_philox10_x8(&c0, &c1, &c2, &c3, seed): the 10 Philox rounds on 8
 * counters at once (random/philox_rounds.h). */
#define PHILOX_V __m256i
#define PHILOX_ROUNDS ff_philox10_x8
#define PHILOX_MULHILO ff_mulhilo8
#define PHILOX_XOR _mm256_xor_si256
#define PHILOX_SET1(x) _mm256_set1_epi32((int)(x))
#include "random/philox_rounds.h"

/* w[0..3] = the words of elements 4*block0 .. 4*block0 + 31 in element order
 * (w[0] holds elements 0..7). The 8 blocks must share their high 32 bits
 * ((block0 >> 32) == ((block0 + 7) >> 32)); callers do the rare others in scalar. */
static inline void ff_philox8_avx2(__m256i w[4], uint64_t block0, uint64_t seed, uint64_t step, uint64_t site) {
    __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)block0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i c1 = _mm256_set1_epi32((int)(uint32_t)(block0 >> 32));
    __m256i c2 = _mm256_set1_epi32((int)(uint32_t)site), c3 = _mm256_set1_epi32((int)(uint32_t)step);
    ff_philox10_x8(&c0, &c1, &c2, &c3, seed);
    /* 4x4 transpose inside each 128-bit lane: t_j lane L = the 4 words of block 4L + j */
    __m256i a = _mm256_unpacklo_epi32(c0, c1), b = _mm256_unpackhi_epi32(c0, c1);
    __m256i c = _mm256_unpacklo_epi32(c2, c3), d = _mm256_unpackhi_epi32(c2, c3);
    __m256i t0 = _mm256_unpacklo_epi64(a, c), t1 = _mm256_unpackhi_epi64(a, c);
    __m256i t2 = _mm256_unpacklo_epi64(b, d), t3 = _mm256_unpackhi_epi64(b, d);
    w[0] = _mm256_permute2x128_si256(t0, t1, 0x20);
    w[1] = _mm256_permute2x128_si256(t2, t3, 0x20);
    w[2] = _mm256_permute2x128_si256(t0, t1, 0x31);
    w[3] = _mm256_permute2x128_si256(t2, t3, 0x31);
}

#endif
