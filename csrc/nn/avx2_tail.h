/* Loads and stores of 1..8 floats for AVX2 leaf loops whose last vector is
 * partial; include inside an FF_TARGET_AVX2_BEGIN region after vec_math_avx2.h.
 * `len` is the lane count (8 for a full vector), `t` its ff_tailmask256. */
#ifndef FF_AVX2_TAIL_H
#define FF_AVX2_TAIL_H

static inline __m256 ff_ld256(const float *p, size_t len, __m256i t) {
    return len == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, t);
}

static inline void ff_st256(float *p, size_t len, __m256i t, __m256 v) {
    if (len == 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, t, v);
}

#define FF_AVX2_LEN(j, n) ((n) - (j) >= 8 ? (size_t)8 : (n) - (j))
#define FF_AVX2_MASK(len) ((len) == 8 ? _mm256_set1_epi32(-1) : ff_tailmask256(len))

#endif
