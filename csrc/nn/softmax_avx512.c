#include "nn/softmax.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>
#include <math.h>

FF_TARGET_AVX512_BEGIN
#include "nn/vec_math_avx512.h"

/* Lanes of x[j..j+16) that take part: in range (t) and not masked by bm. */
static inline __mmask16 live_lanes(const uint8_t *bm, size_t j, __mmask16 t) {
    if (!bm) return t;
    __m128i b = t == (__mmask16)0xFFFF ? _mm_loadu_si128((const __m128i *)(bm + j)) : _mm_maskz_loadu_epi8(t, bm + j);
    return t & (__mmask16)~_mm_test_epi8_mask(b, b);
}

/* Scores of lanes t (0 elsewhere). */
static inline __m512 load_scores(const float *x, const float *am, size_t j, __mmask16 t) {
    __m512 s = ff_ld512(x + j, t);
    if (am) s = _mm512_add_ps(s, ff_ld512(am + j, t));
    return s;
}

void ff_softmax_fwd_row_avx512(float *y, const float *x, const uint8_t *bm, const float *am, size_t n) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 vmax = ninf;
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 t = n - j >= 16 ? (__mmask16)0xFFFF : ff_tailmask512(n - j);
        /* blend in a register, then an unmasked max: a masked max with a memory
         * operand and a just-computed mask was 3x slower on Zen 5 */
        vmax = _mm512_max_ps(vmax, _mm512_mask_mov_ps(ninf, live_lanes(bm, j, t), load_scores(x, am, j, t)));
    }
    float m = _mm512_reduce_max_ps(vmax);
    if (!isfinite(m)) m = 0.0f; /* all masked: exp(-inf - 0) = 0, not exp(nan) */
    __m512 vm = _mm512_set1_ps(m);
    __m512 vsum = _mm512_setzero_ps();
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 t = n - j >= 16 ? (__mmask16)0xFFFF : ff_tailmask512(n - j);
        __m512 e = ff_exp512(_mm512_sub_ps(load_scores(x, am, j, t), vm));
        e = _mm512_maskz_mov_ps(live_lanes(bm, j, t), e);
        ff_st512(y + j, t, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    float sum = ff_hsum512(vsum);
    if (sum > 0.0f) {
        __m512 inv = _mm512_set1_ps(1.0f / sum);
        size_t j = 0;
        for (; j + 16 <= n; j += 16) _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_loadu_ps(y + j), inv));
        if (j < n) {
            __mmask16 t = ff_tailmask512(n - j);
            ff_st512(y + j, t, _mm512_mul_ps(ff_ld512(y + j, t), inv));
        }
    }
}

void ff_softmax_bwd_row_avx512(float *dx, const float *dy, const float *y, size_t n) {
    __m512 acc = _mm512_setzero_ps();
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 t = n - j >= 16 ? (__mmask16)0xFFFF : ff_tailmask512(n - j);
        acc = _mm512_fmadd_ps(ff_ld512(dy + j, t), ff_ld512(y + j, t), acc);
    }
    __m512 d = _mm512_set1_ps(ff_hsum512(acc));
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 t = n - j >= 16 ? (__mmask16)0xFFFF : ff_tailmask512(n - j);
        __m512 g = _mm512_sub_ps(ff_ld512(dy + j, t), d);
        ff_st512(dx + j, t, _mm512_mul_ps(ff_ld512(y + j, t), g));
    }
}

FF_TARGET_END

#else
void ff_softmax_fwd_row_avx512(float *y, const float *x, const uint8_t *bm, const float *am, size_t n) {
    ff_softmax_fwd_row_generic(y, x, bm, am, n);
}
void ff_softmax_bwd_row_avx512(float *dx, const float *dy, const float *y, size_t n) {
    ff_softmax_bwd_row_generic(dx, dy, y, n);
}
#endif
