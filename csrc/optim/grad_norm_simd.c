/* Sum of squares leaves for ff_grad_norm, in double. */
#include "optim/optim.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX2_BEGIN
double ff_sumsq_avx2(const float *x, size_t n) {
    __m256d acc = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
        acc = _mm256_fmadd_pd(d, d, acc);
    }
    double lane[4];
    _mm256_storeu_pd(lane, acc);
    for (int l = 0; i < n; i++, l++) lane[l] += (double)x[i] * x[i];
    return (lane[0] + lane[2]) + (lane[1] + lane[3]);
}
FF_TARGET_END

FF_TARGET_AVX512_BEGIN
double ff_sumsq_avx512(const float *x, size_t n) {
    __m512d a0 = _mm512_setzero_pd(), a1 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512d d0 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i)), d1 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
        a0 = _mm512_fmadd_pd(d0, d0, a0);
        a1 = _mm512_fmadd_pd(d1, d1, a1);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        __m512 t = _mm512_maskz_loadu_ps(k, x + i);
        __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(t)), d1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(t, 1));
        a0 = _mm512_fmadd_pd(d0, d0, a0);
        a1 = _mm512_fmadd_pd(d1, d1, a1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}
FF_TARGET_END

#else
double ff_sumsq_avx2(const float *x, size_t n) { return ff_sumsq_generic(x, n); }
double ff_sumsq_avx512(const float *x, size_t n) { return ff_sumsq_generic(x, n); }
#endif
