#include "nn/layernorm.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>
#include <math.h>

FF_TARGET_AVX2_BEGIN
#include "nn/vec_math_avx2.h"
#include "nn/avx2_tail.h"

/* Masked-off lanes load as 0, so they add nothing to the sums below, except
 * (0 - mean)^2 in the variance, which is masked explicitly. */
void ff_ln_fwd_row_avx2(float *y, float *mean, float *rstd, const float *x, const float *r, const float *w,
                        const float *b, size_t d, float eps) {
    const float *z = x;
    __m256 acc = _mm256_setzero_ps();
    for (size_t j = 0; j < d; j += 8) {
        size_t len = FF_AVX2_LEN(j, d);
        __m256i t = FF_AVX2_MASK(len);
        __m256 v = ff_ld256(x + j, len, t);
        if (r) { /* z = x + r, kept in y until the last pass */
            v = _mm256_add_ps(v, ff_ld256(r + j, len, t));
            ff_st256(y + j, len, t, v);
        }
        acc = _mm256_add_ps(acc, v);
    }
    if (r) z = y;
    float m = ff_hsum256(acc) / (float)d;
    __m256 vm = _mm256_set1_ps(m);
    acc = _mm256_setzero_ps();
    for (size_t j = 0; j < d; j += 8) {
        size_t len = FF_AVX2_LEN(j, d);
        __m256i t = FF_AVX2_MASK(len);
        __m256 c = _mm256_and_ps(_mm256_sub_ps(ff_ld256(z + j, len, t), vm), _mm256_castsi256_ps(t));
        acc = _mm256_fmadd_ps(c, c, acc);
    }
    float rs = 1.0f / sqrtf(ff_hsum256(acc) / (float)d + eps);
    __m256 vr = _mm256_set1_ps(rs);
    for (size_t j = 0; j < d; j += 8) {
        size_t len = FF_AVX2_LEN(j, d);
        __m256i t = FF_AVX2_MASK(len);
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(ff_ld256(z + j, len, t), vm), vr);
        ff_st256(y + j, len, t, _mm256_fmadd_ps(xh, ff_ld256(w + j, len, t), ff_ld256(b + j, len, t)));
    }
    *mean = m;
    *rstd = rs;
}

void ff_ln_bwd_row_avx2(float *dx, float *dw_acc, float *db_acc, const float *dy, const float *x, const float *r,
                        const float *w, float mean, float rstd, size_t d) {
    __m256 vm = _mm256_set1_ps(mean), vr = _mm256_set1_ps(rstd);
    __m256 sg = _mm256_setzero_ps(), sgx = _mm256_setzero_ps();
    for (size_t j = 0; j < d; j += 8) {
        size_t len = FF_AVX2_LEN(j, d);
        __m256i t = FF_AVX2_MASK(len);
        __m256 z = ff_ld256(x + j, len, t);
        if (r) z = _mm256_add_ps(z, ff_ld256(r + j, len, t));
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(z, vm), vr);
        __m256 g = ff_ld256(dy + j, len, t);
        __m256 gw = _mm256_mul_ps(g, ff_ld256(w + j, len, t));
        sg = _mm256_add_ps(sg, gw);
        sgx = _mm256_fmadd_ps(gw, xh, sgx); /* gw is 0 on masked-off lanes */
        ff_st256(dw_acc + j, len, t, _mm256_fmadd_ps(g, xh, ff_ld256(dw_acc + j, len, t)));
        ff_st256(db_acc + j, len, t, _mm256_add_ps(g, ff_ld256(db_acc + j, len, t)));
    }
    __m256 mg = _mm256_set1_ps(ff_hsum256(sg) / (float)d);
    __m256 mgx = _mm256_set1_ps(ff_hsum256(sgx) / (float)d);
    for (size_t j = 0; j < d; j += 8) {
        size_t len = FF_AVX2_LEN(j, d);
        __m256i t = FF_AVX2_MASK(len);
        __m256 z = ff_ld256(x + j, len, t);
        if (r) z = _mm256_add_ps(z, ff_ld256(r + j, len, t));
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(z, vm), vr);
        __m256 gw = _mm256_mul_ps(ff_ld256(dy + j, len, t), ff_ld256(w + j, len, t));
        __m256 v = _mm256_fnmadd_ps(xh, mgx, _mm256_sub_ps(gw, mg));
        ff_st256(dx + j, len, t, _mm256_mul_ps(vr, v));
    }
}

FF_TARGET_END

#else
void ff_ln_fwd_row_avx2(float *y, float *mean, float *rstd, const float *x, const float *r, const float *w,
                        const float *b, size_t d, float eps) {
    ff_ln_fwd_row_generic(y, mean, rstd, x, r, w, b, d, eps);
}
void ff_ln_bwd_row_avx2(float *dx, float *dw_acc, float *db_acc, const float *dy, const float *x, const float *r,
                        const float *w, float mean, float rstd, size_t d) {
    ff_ln_bwd_row_generic(dx, dw_acc, db_acc, dy, x, r, w, mean, rstd, d);
}
#endif
