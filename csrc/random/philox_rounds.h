/* The ten Philox4x32 rounds on vectors of counters (lane k: one block; c0..c3
 * its counter words in, its four output words out), written once for every
 * width. Included by random/philox_avx2.h and random/philox_avx512.h after
 * they define the width's (undefined again at the end)
 *   PHILOX_V            the integer vector type
 *   PHILOX_ROUNDS       the function's name
 *   PHILOX_MULHILO      (hi, lo, a, m): hi and lo 32 bits of a * m per lane
 *   PHILOX_XOR, PHILOX_SET1
 * The words are those of ff_philox4x32_10 (random/philox.h), lane by lane. */

static inline void PHILOX_ROUNDS(PHILOX_V *c0, PHILOX_V *c1, PHILOX_V *c2, PHILOX_V *c3, uint64_t seed) {
    const PHILOX_V m0 = PHILOX_SET1(FF_PHILOX_M0), m1 = PHILOX_SET1(FF_PHILOX_M1);
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
        a0 = PHILOX_XOR(PHILOX_XOR(hi1, a1), PHILOX_SET1(k0));
        a2 = PHILOX_XOR(PHILOX_XOR(hi0, a3), PHILOX_SET1(k1));
        a1 = lo1;
        a3 = lo0;
    }
    *c0 = a0, *c1 = a1, *c2 = a2, *c3 = a3;
}

#undef PHILOX_V
#undef PHILOX_ROUNDS
#undef PHILOX_MULHILO
#undef PHILOX_XOR
#undef PHILOX_SET1
