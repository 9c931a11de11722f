#include "nn/softmax.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>
#include <math.h>
#include <string.h>

FF_TARGET_AVX2_BEGIN
#include "nn/vec_math_avx2.h"

/* All-ones lanes of x[j..j+8) that take part: in range (t) and not masked by bm. */
static inline __m256 live_lanes(const uint8_t *bm, size_t j, size_t len, __m256i t) {
    if (!bm) return _mm256_castsi256_ps(t);
    uint64_t b8 = 0;
    memcpy(&b8, bm + j, len); /* len <= 8 bytes of the mask row */
    __m256i b = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)b8));
    __m256i keep = _mm256_cmpeq_epi32(b, _mm256_setzero_si256());
    return _mm256_castsi256_ps(_mm256_and_si256(keep, t));
}

static inline __m256 load_scores(const float *x, const float *am, size_t j, __m256i t) {
    __m256 s = _mm256_maskload_ps(x + j, t);
    if (am) s = _mm256_add_ps(s, _mm256_maskload_ps(am + j, t));
    return s;
}

void ff_softmax_fwd_row_avx2(float *y, const float *x, const uint8_t *bm, const float *am, size_t n) {
    const __m256i all = _mm256_set1_epi32(-1);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 vmax = ninf;
    for (size_t j = 0; j < n; j += 8) {
        size_t len = n - j >= 8 ? 8 : n - j;
        __m256i t = len == 8 ? all : ff_tailmask256(len);
        __m256 s = _mm256_blendv_ps(ninf, load_scores(x, am, j, t), live_lanes(bm, j, len, t));
        vmax = _mm256_max_ps(vmax, s);
    }
    float m = ff_hmax256(vmax);
    if (!isfinite(m)) m = 0.0f; /* all masked: exp(-inf - 0) = 0, not exp(nan) */
    __m256 vm = _mm256_set1_ps(m);
    __m256 vsum = _mm256_setzero_ps();
    for (size_t j = 0; j < n; j += 8) {
        size_t len = n - j >= 8 ? 8 : n - j;
        __m256i t = len == 8 ? all : ff_tailmask256(len);
        __m256 e = ff_exp256(_mm256_sub_ps(load_scores(x, am, j, t), vm));
        e = _mm256_and_ps(e, live_lanes(bm, j, len, t));
        if (len == 8) _mm256_storeu_ps(y + j, e);
        else _mm256_maskstore_ps(y + j, t, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    float sum = ff_hsum256(vsum);
    if (sum > 0.0f) {
        __m256 inv = _mm256_set1_ps(1.0f / sum);
        size_t j = 0;
        for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), inv));
        for (; j < n; j++) y[j] *= 1.0f / sum;
    }
}

void ff_softmax_bwd_row_avx2(float *dx, const float *dy, const float *y, size_t n) {
    __m256 acc = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= n; j += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(dy + j), _mm256_loadu_ps(y + j), acc);
    if (j < n) {
        __m256i t = ff_tailmask256(n - j);
        acc = _mm256_fmadd_ps(_mm256_maskload_ps(dy + j, t), _mm256_maskload_ps(y + j, t), acc);
    }
    float d = ff_hsum256(acc);
    __m256 vd = _mm256_set1_ps(d);
    for (j = 0; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dx + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), _mm256_sub_ps(_mm256_loadu_ps(dy + j), vd)));
    for (; j < n; j++) dx[j] = y[j] * (dy[j] - d);
}

FF_TARGET_END

#else
void ff_softmax_fwd_row_avx2(float *y, const float *x, const uint8_t *bm, const float *am, size_t n) {
    ff_softmax_fwd_row_generic(y, x, bm, am, n);
}
void ff_softmax_bwd_row_avx2(float *dx, const float *dy, const float *y, size_t n) {
    ff_softmax_bwd_row_generic(dx, dy, y, n);
}
#endif
