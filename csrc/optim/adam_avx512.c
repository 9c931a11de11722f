#include "optim/optim.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX512_BEGIN

/* 8 lanes of the double-precision tail of the update: p - step * m / (sqrt(v) / sqrt_bc2 + eps). */
static inline __m256 final8(__m256 p, __m256 m, __m256 sv, __m512d step, __m512d sbc2, __m512d eps) {
    __m512d denom = _mm512_add_pd(_mm512_div_pd(_mm512_cvtps_pd(sv), sbc2), eps);
    __m512d u = _mm512_mul_pd(step, _mm512_div_pd(_mm512_cvtps_pd(m), denom));
    return _mm512_cvtpd_ps(_mm512_sub_pd(_mm512_cvtps_pd(p), u));
}

/* No FMA: every rounding is the scalar leaf's. */
void ff_adam_range_avx512(float *p, float *m, float *v, const float *g, size_t n, const ff_adam_args *a) {
    const __m512 b1 = _mm512_set1_ps(a->beta1), omb1 = _mm512_set1_ps(a->one_minus_beta1);
    const __m512 b2 = _mm512_set1_ps(a->beta2), omb2 = _mm512_set1_ps(a->one_minus_beta2);
    const __m512 wd = _mm512_set1_ps(a->wd), decay = _mm512_set1_ps(a->decay);
    const __m512d step = _mm512_set1_pd(a->step_size), sbc2 = _mm512_set1_pd(a->sqrt_bc2), eps = _mm512_set1_pd(a->eps);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        __m512 pi = _mm512_maskz_loadu_ps(k, p + i), gi = _mm512_maskz_loadu_ps(k, g + i);
        if (a->decoupled) pi = _mm512_mul_ps(pi, decay);
        if (a->l2) gi = _mm512_add_ps(gi, _mm512_mul_ps(wd, pi));
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, m + i), b1), _mm512_mul_ps(omb1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, v + i), b2),
                                  _mm512_mul_ps(_mm512_mul_ps(omb2, gi), gi));
        __m512 sv = _mm512_sqrt_ps(vi);
        __m256 lo = final8(_mm512_castps512_ps256(pi), _mm512_castps512_ps256(mi), _mm512_castps512_ps256(sv), step, sbc2, eps);
        __m256 hi = final8(_mm512_extractf32x8_ps(pi, 1), _mm512_extractf32x8_ps(mi, 1), _mm512_extractf32x8_ps(sv, 1), step, sbc2, eps);
        _mm512_mask_storeu_ps(p + i, k, _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1));
        _mm512_mask_storeu_ps(m + i, k, mi);
        _mm512_mask_storeu_ps(v + i, k, vi);
    }
}

FF_TARGET_END

#else
void ff_adam_range_avx512(float *p, float *m, float *v, const float *g, size_t n, const ff_adam_args *a) {
    ff_adam_range_generic(p, m, v, g, n, a);
}
#endif
