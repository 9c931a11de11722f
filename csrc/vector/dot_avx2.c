#include "vector/dot.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX2_BEGIN

float ff_dot_chunk_avx2(size_t n, const float *x, const float *y) {
    __m256 acc = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc);
    float lane[8];
    _mm256_storeu_ps(lane, acc);
    for (int l = 0; i < n; i++, l++) lane[l] += x[i] * y[i];
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

FF_TARGET_END

#else
/* Never selected off x86 (ff_simd_detected() is generic there). */
float ff_dot_chunk_avx2(size_t n, const float *x, const float *y) { return ff_dot_chunk_generic(n, x, y); }
#endif
