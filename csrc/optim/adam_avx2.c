#include "optim/optim.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX2_BEGIN

/* 4 lanes of the double-precision tail of the update. */
static inline __m128 final4(__m128 p, __m128 m, __m128 sv, __m256d step, __m256d sbc2, __m256d eps) {
    __m256d denom = _mm256_add_pd(_mm256_div_pd(_mm256_cvtps_pd(sv), sbc2), eps);
    __m256d u = _mm256_mul_pd(step, _mm256_div_pd(_mm256_cvtps_pd(m), denom));
    return _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_cvtps_pd(p), u));
}

/* No FMA: every rounding is the scalar leaf's. Full vectors here, the tail in the generic leaf. */
void ff_adam_range_avx2(float *p, float *m, float *v, const float *g, size_t n, const ff_adam_args *a) {
    const __m256 b1 = _mm256_set1_ps(a->beta1), omb1 = _mm256_set1_ps(a->one_minus_beta1);
    const __m256 b2 = _mm256_set1_ps(a->beta2), omb2 = _mm256_set1_ps(a->one_minus_beta2);
    const __m256 wd = _mm256_set1_ps(a->wd), decay = _mm256_set1_ps(a->decay);
    const __m256d step = _mm256_set1_pd(a->step_size), sbc2 = _mm256_set1_pd(a->sqrt_bc2), eps = _mm256_set1_pd(a->eps);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 pi = _mm256_loadu_ps(p + i), gi = _mm256_loadu_ps(g + i);
        if (a->decoupled) pi = _mm256_mul_ps(pi, decay);
        if (a->l2) gi = _mm256_add_ps(gi, _mm256_mul_ps(wd, pi));
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1), _mm256_mul_ps(omb1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2), _mm256_mul_ps(_mm256_mul_ps(omb2, gi), gi));
        __m256 sv = _mm256_sqrt_ps(vi);
        __m128 lo = final4(_mm256_castps256_ps128(pi), _mm256_castps256_ps128(mi), _mm256_castps256_ps128(sv), step, sbc2, eps);
        __m128 hi = final4(_mm256_extractf128_ps(pi, 1), _mm256_extractf128_ps(mi, 1), _mm256_extractf128_ps(sv, 1), step, sbc2, eps);
        _mm256_storeu_ps(p + i, _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
    }
    if (i < n) ff_adam_range_generic(p + i, m + i, v + i, g + i, n - i, a);
}

FF_TARGET_END

#else
void ff_adam_range_avx2(float *p, float *m, float *v, const float *g, size_t n, const ff_adam_args *a) {
    ff_adam_range_generic(p, m, v, g, n, a);
}
#endif
