/* Philox4x32-10 for 16 blocks at once (64 dropout words), AVX-512. Include
 * inside an FF_TARGET_AVX512_BEGIN ... FF_TARGET_END region after
 * <immintrin.h>; the words are those of ff_philox_block (random/philox.h). */
#ifndef FF_PHILOX_AVX512_H
#define FF_PHILOX_AVX512_H
#include "random/philox.h"

#define PHILOX_V __m512i
#define PHILOX_I(op) _mm512_##op
#define PHILOX_XOR _mm512_xor_si512
#define PHILOX_BLEND_ODD(e, o) _mm512_mask_blend_epi32((__mmask16)0xAAAA, e, o)
#define PHILOX_ROUNDS ff_philox10_x16
#define PHILOX_MULHILO ff_mulhilo_x16
#define PHILOX_LANE_TRANSPOSE ff_philox_lane_transpose_x16
#include "random/philox_rounds.h"

/* w[0..3] = the words of elements 4*block0 .. 4*block0 + 63 in element
 * order (w[0] holds elements 0..15, i.e. blocks block0 .. block0+3). */
static inline void ff_philox16_avx512(__m512i w[4], uint64_t block0, uint64_t seed, uint64_t step, uint64_t site) {
    __m512i b_lo = _mm512_add_epi64(_mm512_set1_epi64((long long)block0), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    __m512i b_hi = _mm512_add_epi64(b_lo, _mm512_set1_epi64(8));
    /* lane k of c0/c1 = low/high word of block block0 + k */
    __m512i c0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(b_lo)), _mm512_cvtepi64_epi32(b_hi), 1);
    __m512i c1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_srli_epi64(b_lo, 32))),
                                    _mm512_cvtepi64_epi32(_mm512_srli_epi64(b_hi, 32)), 1);
    __m512i c2 = _mm512_set1_epi32((int)(uint32_t)site), c3 = _mm512_set1_epi32((int)(uint32_t)step);
    ff_philox10_x16(&c0, &c1, &c2, &c3, seed);
    __m512i t[4];
    ff_philox_lane_transpose_x16(t, c0, c1, c2, c3);
    /* then across the four lanes: w[L] = (t0, t1, t2, t3) lane L */
    __m512i u0 = _mm512_shuffle_i32x4(t[0], t[1], _MM_SHUFFLE(1, 0, 1, 0));
    __m512i u1 = _mm512_shuffle_i32x4(t[2], t[3], _MM_SHUFFLE(1, 0, 1, 0));
    __m512i u2 = _mm512_shuffle_i32x4(t[0], t[1], _MM_SHUFFLE(3, 2, 3, 2));
    __m512i u3 = _mm512_shuffle_i32x4(t[2], t[3], _MM_SHUFFLE(3, 2, 3, 2));
    w[0] = _mm512_shuffle_i32x4(u0, u1, _MM_SHUFFLE(2, 0, 2, 0));
    w[1] = _mm512_shuffle_i32x4(u0, u1, _MM_SHUFFLE(3, 1, 3, 1));
    w[2] = _mm512_shuffle_i32x4(u2, u3, _MM_SHUFFLE(2, 0, 2, 0));
    w[3] = _mm512_shuffle_i32x4(u2, u3, _MM_SHUFFLE(3, 1, 3, 1));
}

#endif
