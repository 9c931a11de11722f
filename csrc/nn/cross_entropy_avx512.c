#include "nn/cross_entropy.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>
#include <math.h>

FF_TARGET_AVX512_BEGIN
#include "nn/vec_math_avx512.h"

#define TAIL(j, n) ((n) - (j) >= 16 ? (__mmask16)0xFFFF : ff_tailmask512((n) - (j)))

double ff_ce_row_avx512(float *dl, const float *x, size_t V, size_t t, double eps, double inv_n) {
    const float x_t = x[t]; /* before dl (which may be x) is written */
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (size_t j = 0; j < V; j += 16) {
        __mmask16 k = TAIL(j, V);
        vmax = _mm512_max_ps(vmax, _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), k, ff_ld512(x + j, k)));
    }
    float m = _mm512_reduce_max_ps(vmax);
    __m512 vm = _mm512_set1_ps(m);
    /* two accumulators each: the loop is short of independent work otherwise */
    __m512 se0 = _mm512_setzero_ps(), se1 = se0, sx0 = se0, sx1 = se0;
    size_t j = 0;
    for (; j + 32 <= V; j += 32) {
        __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + j + 16);
        __m512 ea = ff_exp512(_mm512_sub_ps(a, vm)), eb = ff_exp512(_mm512_sub_ps(b, vm));
        _mm512_storeu_ps(dl + j, ea);
        _mm512_storeu_ps(dl + j + 16, eb);
        se0 = _mm512_add_ps(se0, ea);
        se1 = _mm512_add_ps(se1, eb);
        sx0 = _mm512_add_ps(sx0, a);
        sx1 = _mm512_add_ps(sx1, b);
    }
    for (; j < V; j += 16) {
        __mmask16 k = TAIL(j, V);
        __m512 a = ff_ld512(x + j, k);
        __m512 ea = _mm512_maskz_mov_ps(k, ff_exp512(_mm512_sub_ps(a, vm)));
        ff_st512(dl + j, k, ea);
        se0 = _mm512_add_ps(se0, ea);
        sx0 = _mm512_add_ps(sx0, a);
    }
    double se = ff_hsum512(_mm512_add_ps(se0, se1));
    double sx = ff_hsum512(_mm512_add_ps(sx0, sx1));
    float e_t = dl[t];
    __m512 c1 = _mm512_set1_ps((float)(inv_n / se)), c0 = _mm512_set1_ps((float)(eps / (double)V * inv_n));
    for (j = 0; j < V; j += 16) {
        __mmask16 k = TAIL(j, V);
        ff_st512(dl + j, k, _mm512_fmsub_ps(ff_ld512(dl + j, k), c1, c0));
    }
    return ff_ce_row_finish(dl, V, t, eps, inv_n, m, se, sx, e_t, x_t);
}

FF_TARGET_END

#else
double ff_ce_row_avx512(float *dl, const float *x, size_t V, size_t t, double eps, double inv_n) {
    return ff_ce_row_generic(dl, x, V, t, eps, inv_n);
}
#endif
