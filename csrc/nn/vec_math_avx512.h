/* Vector math for AVX-512 leaf files; include inside FF_TARGET_AVX512_BEGIN
 * ... FF_TARGET_END, after <immintrin.h>. Same algorithm and accuracy as
 * ff_exp256 in vec_math_avx2.h (see there); scalef does the 2^n scaling. */
#ifndef FF_VEC_MATH_AVX512_H
#define FF_VEC_MATH_AVX512_H

#define FF_EXP_LO -87.33654f
#define FF_EXP_HI 88.72283f
#define FF_LOG2E 1.44269504088896341f
#define FF_LN2_HI 0.693359375f
#define FF_LN2_LO -2.12194440e-4f

static inline __m512 ff_exp512(__m512 x) {
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(FF_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FF_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FF_LN2_LO), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512 y = _mm512_scalef_ps(p, n); /* p * 2^n, with correct overflow to inf */
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(FF_EXP_LO), _CMP_LT_OQ), _mm512_setzero_ps());
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(FF_EXP_HI), _CMP_GT_OQ), _mm512_set1_ps(__builtin_inff()));
    return y;
}

/* Horizontal sum in one fixed order (halves, then ff_hsum256's order). */
static inline float ff_hsum512(__m512 v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __mmask16 ff_tailmask512(size_t n) { return (__mmask16)((1u << n) - 1u); }

/* Loads and stores of lanes t (t = 0xFFFF for a whole vector, else a tail
 * mask): whole vectors use plain instructions, since masked memory operations
 * are slower on AMD Zen 4/5 even with every lane set. */
static inline __m512 ff_ld512(const float *p, __mmask16 t) {
    return t == (__mmask16)0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(t, p);
}

static inline void ff_st512(float *p, __mmask16 t, __m512 v) {
    if (t == (__mmask16)0xFFFF) _mm512_storeu_ps(p, v);
    else _mm512_mask_storeu_ps(p, t, v);
}

#endif
