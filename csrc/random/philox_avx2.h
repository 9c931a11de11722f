/* Philox4x32-10 for 8 blocks at once (32 dropout words), AVX2. Include
 * inside an FF_TARGET_AVX2_BEGIN ... FF_TARGET_END region after
 * <immintrin.h>; the words are those of ff_philox_block (random/philox.h). */
#ifndef FF_PHILOX_AVX2_H
#define FF_PHILOX_AVX2_H
#include "random/philox.h"

#define PHILOX_V __m256i
#define PHILOX_I(op) _mm256_##op
#define PHILOX_XOR _mm256_xor_si256
#define PHILOX_BLEND_ODD(e, o) _mm256_blend_epi32(e, o, 0xAA)
#define PHILOX_ROUNDS ff_philox10_x8
#define PHILOX_MULHILO ff_mulhilo_x8
#define PHILOX_LANE_TRANSPOSE ff_philox_lane_transpose_x8
#include "random/philox_rounds.h"

/* w[0..3] = the words of elements 4*block0 .. 4*block0 + 31 in element order
 * (w[0] holds elements 0..7). The 8 blocks must share their high 32 bits
 * ((block0 >> 32) == ((block0 + 7) >> 32)); callers do the rare others in scalar. */
static inline void ff_philox8_avx2(__m256i w[4], uint64_t block0, uint64_t seed, uint64_t step, uint64_t site) {
    __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)block0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i c1 = _mm256_set1_epi32((int)(uint32_t)(block0 >> 32));
    __m256i c2 = _mm256_set1_epi32((int)(uint32_t)site), c3 = _mm256_set1_epi32((int)(uint32_t)step);
    ff_philox10_x8(&c0, &c1, &c2, &c3, seed);
    __m256i t[4];
    ff_philox_lane_transpose_x8(t, c0, c1, c2, c3);
    /* then across the two lanes */
    w[0] = _mm256_permute2x128_si256(t[0], t[1], 0x20);
    w[1] = _mm256_permute2x128_si256(t[2], t[3], 0x20);
    w[2] = _mm256_permute2x128_si256(t[0], t[1], 0x31);
    w[3] = _mm256_permute2x128_si256(t[2], t[3], 0x31);
}

#endif
