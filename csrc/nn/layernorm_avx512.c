#include "nn/layernorm.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>
#include <math.h>

FF_TARGET_AVX512_BEGIN
#include "nn/vec_math_avx512.h"

#define TAIL(j, d) ((d) - (j) >= 16 ? (__mmask16)0xFFFF : ff_tailmask512((d) - (j)))

void ff_ln_fwd_row_avx512(float *y, float *mean, float *rstd, const float *x, const float *r, const float *w,
                          const float *b, size_t d, float eps) {
    const float *z = x;
    __m512 acc = _mm512_setzero_ps();
    if (r) { /* z = x + r, kept in y until the last pass */
        for (size_t j = 0; j < d; j += 16) {
            __mmask16 t = TAIL(j, d);
            __m512 v = _mm512_add_ps(ff_ld512(x + j, t), ff_ld512(r + j, t));
            ff_st512(y + j, t, v);
            acc = _mm512_add_ps(acc, v);
        }
        z = y;
    } else {
        for (size_t j = 0; j < d; j += 16) acc = _mm512_add_ps(acc, ff_ld512(x + j, TAIL(j, d)));
    }
    float m = ff_hsum512(acc) / (float)d;
    __m512 vm = _mm512_set1_ps(m);
    acc = _mm512_setzero_ps();
    for (size_t j = 0; j < d; j += 16) {
        __mmask16 t = TAIL(j, d);
        __m512 c = _mm512_maskz_sub_ps(t, ff_ld512(z + j, t), vm);
        acc = _mm512_fmadd_ps(c, c, acc);
    }
    float rs = 1.0f / sqrtf(ff_hsum512(acc) / (float)d + eps);
    __m512 vr = _mm512_set1_ps(rs);
    for (size_t j = 0; j < d; j += 16) {
        __mmask16 t = TAIL(j, d);
        __m512 xh = _mm512_mul_ps(_mm512_sub_ps(ff_ld512(z + j, t), vm), vr);
        ff_st512(y + j, t, _mm512_fmadd_ps(xh, ff_ld512(w + j, t), ff_ld512(b + j, t)));
    }
    *mean = m;
    *rstd = rs;
}

void ff_ln_bwd_row_avx512(float *dx, float *dw_acc, float *db_acc, const float *dy, const float *x, const float *r,
                          const float *w, float mean, float rstd, size_t d) {
    __m512 vm = _mm512_set1_ps(mean), vr = _mm512_set1_ps(rstd);
    __m512 sg = _mm512_setzero_ps(), sgx = _mm512_setzero_ps();
    for (size_t j = 0; j < d; j += 16) {
        __mmask16 t = TAIL(j, d);
        __m512 z = ff_ld512(x + j, t);
        if (r) z = _mm512_add_ps(z, ff_ld512(r + j, t));
        __m512 xh = _mm512_mul_ps(_mm512_sub_ps(z, vm), vr);
        __m512 g = ff_ld512(dy + j, t);
        __m512 gw = _mm512_mul_ps(g, ff_ld512(w + j, t));
        sg = _mm512_add_ps(sg, gw);
        sgx = _mm512_fmadd_ps(gw, xh, sgx);
        ff_st512(dw_acc + j, t, _mm512_fmadd_ps(g, xh, ff_ld512(dw_acc + j, t)));
        ff_st512(db_acc + j, t, _mm512_add_ps(g, ff_ld512(db_acc + j, t)));
    }
    __m512 mg = _mm512_set1_ps(ff_hsum512(sg) / (float)d);
    __m512 mgx = _mm512_set1_ps(ff_hsum512(sgx) / (float)d);
    for (size_t j = 0; j < d; j += 16) {
        __mmask16 t = TAIL(j, d);
        __m512 z = ff_ld512(x + j, t);
        if (r) z = _mm512_add_ps(z, ff_ld512(r + j, t));
        __m512 xh = _mm512_mul_ps(_mm512_sub_ps(z, vm), vr);
        __m512 gw = _mm512_mul_ps(ff_ld512(dy + j, t), ff_ld512(w + j, t));
        __m512 v = _mm512_fnmadd_ps(xh, mgx, _mm512_sub_ps(gw, mg));
        ff_st512(dx + j, t, _mm512_mul_ps(vr, v));
    }
}

FF_TARGET_END

#else
void ff_ln_fwd_row_avx512(float *y, float *mean, float *rstd, const float *x, const float *r, const float *w,
                          const float *b, size_t d, float eps) {
    ff_ln_fwd_row_generic(y, mean, rstd, x, r, w, b, d, eps);
}
void ff_ln_bwd_row_avx512(float *dx, float *dw_acc, float *db_acc, const float *dy, const float *x, const float *r,
                          const float *w, float mean, float rstd, size_t d) {
    ff_ln_bwd_row_generic(dx, dw_acc, db_acc, dy, x, r, w, mean, rstd, d);
}
#endif
