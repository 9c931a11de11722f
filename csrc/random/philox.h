/* Philox4x32-10 (Salmon et al., SC 2011), the counter-based generator behind
 * every dropout mask. Header-only and static inline so that dropout and the
 * flash-attention kernel inline it into their loops.
 *
 * The mask scheme (fastformer/reference/dropout.py is the contract):
 *   key     = (seed lo32, seed hi32)
 *   counter = ((i >> 2) lo32, (i >> 34) lo32, site lo32, step lo32)
 *   word    = output word (i & 3)
 *   keep    = word >= floor(p * 2^32)   (threshold 2^32 drops everything)
 * so four consecutive elements share one Philox call. */
#ifndef FF_PHILOX_H
#define FF_PHILOX_H

#include <stdint.h>

#define FF_PHILOX_M0 0xD2511F53u
#define FF_PHILOX_M1 0xCD9E8D57u
#define FF_PHILOX_W0 0x9E3779B9u
#define FF_PHILOX_W1 0xBB67AE85u

/* out[4] = Philox4x32-10(ctr[4], key (k0, k1)). */
static inline void ff_philox4x32_10(uint32_t out[4], const uint32_t ctr[4], uint32_t k0, uint32_t k1) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    for (int r = 0; r < 10; r++) {
        if (r) {
            k0 += FF_PHILOX_W0;
            k1 += FF_PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)FF_PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)FF_PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* The four words of block b = i >> 2 of the dropout stream (seed, step, site). */
static inline void ff_philox_block(uint32_t out[4], uint64_t block, uint64_t seed, uint64_t step, uint64_t site) {
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)site, (uint32_t)step};
    ff_philox4x32_10(out, ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* The uint32 threshold as a uint64: floor(p * 2^32) for 0 <= p < 1, 2^32 for
 * p == 1 (no 32-bit word reaches it, so everything drops). */
static inline uint64_t ff_dropout_threshold(double p) {
    if (p >= 1.0) return (uint64_t)1 << 32;
    return (uint64_t)(p * 4294967296.0);
}

#endif
