#include "nn/cross_entropy.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>
#include <math.h>

FF_TARGET_AVX2_BEGIN
#include "nn/vec_math_avx2.h"
#include "nn/avx2_tail.h"

double ff_ce_row_avx2(float *dl, const float *x, size_t V, size_t t, double eps, double inv_n) {
    const float x_t = x[t]; /* before dl (which may be x) is written */
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 vmax = ninf;
    for (size_t j = 0; j < V; j += 8) {
        size_t len = FF_AVX2_LEN(j, V);
        __m256i k = FF_AVX2_MASK(len);
        vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(ninf, ff_ld256(x + j, len, k), _mm256_castsi256_ps(k)));
    }
    float m = ff_hmax256(vmax);
    __m256 vm = _mm256_set1_ps(m);
    __m256 se = _mm256_setzero_ps(), sx = se;
    for (size_t j = 0; j < V; j += 8) {
        size_t len = FF_AVX2_LEN(j, V);
        __m256i k = FF_AVX2_MASK(len);
        __m256 a = ff_ld256(x + j, len, k);
        __m256 e = _mm256_and_ps(ff_exp256(_mm256_sub_ps(a, vm)), _mm256_castsi256_ps(k));
        ff_st256(dl + j, len, k, e);
        se = _mm256_add_ps(se, e);
        sx = _mm256_add_ps(sx, a);
    }
    double sum_e = ff_hsum256(se), sum_x = ff_hsum256(sx);
    float e_t = dl[t];
    __m256 c1 = _mm256_set1_ps((float)(inv_n / sum_e)), c0 = _mm256_set1_ps((float)(eps / (double)V * inv_n));
    for (size_t j = 0; j < V; j += 8) {
        size_t len = FF_AVX2_LEN(j, V);
        __m256i k = FF_AVX2_MASK(len);
        ff_st256(dl + j, len, k, _mm256_fmsub_ps(ff_ld256(dl + j, len, k), c1, c0));
    }
    return ff_ce_row_finish(dl, V, t, eps, inv_n, m, sum_e, sum_x, e_t, x_t);
}

FF_TARGET_END

#else
double ff_ce_row_avx2(float *dl, const float *x, size_t V, size_t t, double eps, double inv_n) {
    return ff_ce_row_generic(dl, x, V, t, eps, inv_n);
}
#endif
