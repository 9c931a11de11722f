/* FMA throughput leaf for AVX2: 12 independent ymm chains (2 pipes x 4-5
 * cycles latency need >= 10), written out in full so the loop body is 12
 * FMAs whatever the compiler's unrolling heuristics. */
#include "runtime/fma_peak.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX2_BEGIN

float ff_fma_peak_avx2(size_t iters, double *flops) {
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-6f);
    /* Distinct starting values: identical chains would be merged by the compiler. */
#define S(i) _mm256_set1_ps(1.0f + (i) * 0.001f)
    __m256 a0 = S(0), a1 = S(1), a2 = S(2), a3 = S(3), a4 = S(4), a5 = S(5);
    __m256 a6 = S(6), a7 = S(7), a8 = S(8), a9 = S(9), a10 = S(10), a11 = S(11);
#undef S
    for (size_t i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, x, y);
        a1 = _mm256_fmadd_ps(a1, x, y);
        a2 = _mm256_fmadd_ps(a2, x, y);
        a3 = _mm256_fmadd_ps(a3, x, y);
        a4 = _mm256_fmadd_ps(a4, x, y);
        a5 = _mm256_fmadd_ps(a5, x, y);
        a6 = _mm256_fmadd_ps(a6, x, y);
        a7 = _mm256_fmadd_ps(a7, x, y);
        a8 = _mm256_fmadd_ps(a8, x, y);
        a9 = _mm256_fmadd_ps(a9, x, y);
        a10 = _mm256_fmadd_ps(a10, x, y);
        a11 = _mm256_fmadd_ps(a11, x, y);
    }
    *flops = (double)iters * 12 * 8 * 2;
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}

FF_TARGET_END

#else
float ff_fma_peak_avx2(size_t iters, double *flops) { return ff_fma_peak_generic(iters, flops); }
#endif
