/* Vector math for AVX2+FMA leaf files. Include it *inside* an
 * FF_TARGET_AVX2_BEGIN ... FF_TARGET_END region (after <immintrin.h>) so
 * these static inline functions are compiled for AVX2.
 *
 * ff_exp256: expf to about 1 ulp on [-87.3, 88.7]; 0 below (the denormal
 * range is flushed, an absolute error under 1.2e-38), +inf above, NaN kept.
 * exp(x) = 2^n * e^r with n = round(x / ln2), r = x - n ln2 in two steps
 * (Cody-Waite, ln2 split so n * LN2_HI is exact), e^r by its degree-7 Taylor
 * polynomial (truncation 5e-9 relative on |r| <= ln2/2). */
#ifndef FF_VEC_MATH_AVX2_H
#define FF_VEC_MATH_AVX2_H

#define FF_EXP_LO -87.33654f /* below: exp < FLT_MIN, flushed to 0 */
#define FF_EXP_HI 88.72283f  /* above: exp > FLT_MAX */
#define FF_LOG2E 1.44269504088896341f
#define FF_LN2_HI 0.693359375f
#define FF_LN2_LO -2.12194440e-4f

static inline __m256 ff_exp256(__m256 x) {
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(FF_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FF_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FF_LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n by adding n to the exponent field; n in [-126, 128] here, and
     * n = 128 only for x in the top half-ulp of range, so split the scale. */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i half = _mm256_srai_epi32(ni, 1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(FF_EXP_LO), _CMP_LT_OQ));
    y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(x, _mm256_set1_ps(FF_EXP_HI), _CMP_GT_OQ));
    return y;
}

/* Horizontal sum in one fixed order (pairs of halves). */
static inline float ff_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float ff_hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Mask of the first n (< 8) lanes, for loads/stores of a row's tail. */
static inline __m256i ff_tailmask256(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#endif
