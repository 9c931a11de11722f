/* Philox4x32-10 for 16 blocks at once (64 dropout words), AVX-512. Include
 * inside an FF_TARGET_AVX512_BEGIN ... FF_TARGET_END region after
 * <immintrin.h>; the words are those of ff_philox_block (random/philox.h). */
#ifndef FF_PHILOX_AVX512_H
#define FF_PHILOX_AVX512_H

#include "random/philox.h"

/* hi and lo 32 bits of the 16 products a * m (m the same in every lane). */
static inline void ff_mulhilo16(__m512i *hi, __m512i *lo, __m512i a, __m512i m) {
    __m512i e = _mm512_mul_epu32(a, m);                        /* even lanes, 64-bit products */
    __m512i o = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m); /* odd lanes */
    *hi = _mm512_mask_blend_epi32((__mmask16)0xAAAA, _mm512_srli_epi64(e, 32), o);
    *lo = _mm512_mullo_epi32(a, m);
}

/* ff_philox10_x16(&c0, &c1, &c2, &c3, seed): the 10 Philox rounds on 16
 * counters at once (random/philox_rounds.h). */
#define PHILOX_V __m512i
#define PHILOX_ROUNDS ff_philox10_x16
#define PHILOX_MULHILO ff_mulhilo16
#define PHILOX_XOR _mm512_xor_si512
#define PHILOX_SET1(x) _mm512_set1_epi32((int)(x))
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
    /* 4x4 transpose inside each 128-bit lane: t_j lane L = the 4 words of block 4L + j */
    __m512i a = _mm512_unpacklo_epi32(c0, c1), b = _mm512_unpackhi_epi32(c0, c1);
    __m512i c = _mm512_unpacklo_epi32(c2, c3), d = _mm512_unpackhi_epi32(c2, c3);
    __m512i t0 = _mm512_unpacklo_epi64(a, c), t1 = _mm512_unpackhi_epi64(a, c);
    __m512i t2 = _mm512_unpacklo_epi64(b, d), t3 = _mm512_unpackhi_epi64(b, d);
    /* then across lanes: w[L] = (t0, t1, t2, t3) lane L */
    __m512i u0 = _mm512_shuffle_i32x4(t0, t1, _MM_SHUFFLE(1, 0, 1, 0));
    __m512i u1 = _mm512_shuffle_i32x4(t2, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m512i u2 = _mm512_shuffle_i32x4(t0, t1, _MM_SHUFFLE(3, 2, 3, 2));
    __m512i u3 = _mm512_shuffle_i32x4(t2, t3, _MM_SHUFFLE(3, 2, 3, 2));
    w[0] = _mm512_shuffle_i32x4(u0, u1, _MM_SHUFFLE(2, 0, 2, 0));
    w[1] = _mm512_shuffle_i32x4(u0, u1, _MM_SHUFFLE(3, 1, 3, 1));
    w[2] = _mm512_shuffle_i32x4(u2, u3, _MM_SHUFFLE(2, 0, 2, 0));
    w[3] = _mm512_shuffle_i32x4(u2, u3, _MM_SHUFFLE(3, 1, 3, 1));
}

#endif
