/* The Philox4x32-10 pieces that read the same at every vector width, written
 * once. Included by random/philox_avx2.h and random/philox_avx512.h after they
 * define the width's (undefined again at the end)
 *   PHILOX_V               the integer vector type
 *   PHILOX_I(op)           the width's _mm*_<op> (ops of the same name at every width)
 *   PHILOX_XOR             its whole-register xor
 *   PHILOX_BLEND_ODD(e, o) e's even 32-bit lanes, o's odd ones
 *   PHILOX_ROUNDS, PHILOX_MULHILO, PHILOX_LANE_TRANSPOSE  the names to give the functions
 * The words are those of ff_philox4x32_10 (random/philox.h), lane by lane. */

/* hi and lo 32 bits of the products a * m per 32-bit lane (m the same in every lane). */
static inline void PHILOX_MULHILO(PHILOX_V *hi, PHILOX_V *lo, PHILOX_V a, PHILOX_V m) {
    PHILOX_V e = PHILOX_I(mul_epu32)(a, m);                         /* even lanes, 64-bit products */
    PHILOX_V o = PHILOX_I(mul_epu32)(PHILOX_I(srli_epi64)(a, 32), m); /* odd lanes */
    *hi = PHILOX_BLEND_ODD(PHILOX_I(srli_epi64)(e, 32), o);
    *lo = PHILOX_I(mullo_epi32)(a, m);
}

/* The ten rounds on vectors of counters (lane k: one block; c0..c3 its
 * counter words in, its four output words out). */
static inline void PHILOX_ROUNDS(PHILOX_V *c0, PHILOX_V *c1, PHILOX_V *c2, PHILOX_V *c3, uint64_t seed) {
    const PHILOX_V m0 = PHILOX_I(set1_epi32)((int)FF_PHILOX_M0), m1 = PHILOX_I(set1_epi32)((int)FF_PHILOX_M1);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    PHILOX_V a0 = *c0, a1 = *c1, a2 = *c2, a3 = *c3;
    for (int r = 0; r < 10; r++) {
        if (r) {
            k0 += FF_PHILOX_W0;
            k1 += FF_PHILOX_W1;
        }
        PHILOX_V hi0, lo0, hi1, lo1;
        PHILOX_MULHILO(&hi0, &lo0, a0, m0);
        PHILOX_MULHILO(&hi1, &lo1, a2, m1);
        a0 = PHILOX_XOR(PHILOX_XOR(hi1, a1), PHILOX_I(set1_epi32)((int)k0));
        a2 = PHILOX_XOR(PHILOX_XOR(hi0, a3), PHILOX_I(set1_epi32)((int)k1));
        a1 = lo1;
        a3 = lo0;
    }
    *c0 = a0, *c1 = a1, *c2 = a2, *c3 = a3;
}

/* The 4x4 transpose inside each 128-bit lane of the rounds' output:
 * t[j] lane L = the 4 words of block 4L + j. */
static inline void PHILOX_LANE_TRANSPOSE(PHILOX_V t[4], PHILOX_V c0, PHILOX_V c1, PHILOX_V c2, PHILOX_V c3) {
    PHILOX_V a = PHILOX_I(unpacklo_epi32)(c0, c1), b = PHILOX_I(unpackhi_epi32)(c0, c1);
    PHILOX_V c = PHILOX_I(unpacklo_epi32)(c2, c3), d = PHILOX_I(unpackhi_epi32)(c2, c3);
    t[0] = PHILOX_I(unpacklo_epi64)(a, c), t[1] = PHILOX_I(unpackhi_epi64)(a, c);
    t[2] = PHILOX_I(unpacklo_epi64)(b, d), t[3] = PHILOX_I(unpackhi_epi64)(b, d);
}

#undef PHILOX_V
#undef PHILOX_I
#undef PHILOX_XOR
#undef PHILOX_BLEND_ODD
#undef PHILOX_ROUNDS
#undef PHILOX_MULHILO
#undef PHILOX_LANE_TRANSPOSE
