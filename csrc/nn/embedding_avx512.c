/* AVX-512 row leaves of the embedding: separate multiply and add (no FMA),
 * so the bits are the portable loop's and the reference's. */
#include "nn/embedding.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX512_BEGIN
#include "nn/vec_math_avx512.h"

/* y (d,) = w * scale + p */
void ff_embedding_row_avx512(float *y, const float *w, const float *p, size_t d, float scale) {
    const __m512 s = _mm512_set1_ps(scale);
    for (size_t j = 0; j < d; j += 16) {
        __mmask16 k = d - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - j)) - 1u);
        __m512 v = _mm512_mul_ps(ff_ld512(w + j, k), s);
        ff_st512(y + j, k, _mm512_add_ps(v, ff_ld512(p + j, k)));
    }
}

/* dw (d,) += g * scale, or dw = 0 + g * scale when first */
void ff_embedding_acc_avx512(float *dw, const float *g, size_t d, float scale, int first) {
    const __m512 s = _mm512_set1_ps(scale);
    for (size_t j = 0; j < d; j += 16) {
        __mmask16 k = d - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - j)) - 1u);
        __m512 v = _mm512_mul_ps(ff_ld512(g + j, k), s);
        __m512 acc = first ? _mm512_setzero_ps() : ff_ld512(dw + j, k);
        ff_st512(dw + j, k, _mm512_add_ps(acc, v));
    }
}

FF_TARGET_END
#endif
