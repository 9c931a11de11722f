#include "decode/beam_topk.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>
#include <math.h>

FF_TARGET_AVX2_BEGIN
#include "nn/vec_math_avx2.h"
#include "nn/avx2_tail.h"

float ff_row_lse_avx2(const float *x, size_t V) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 vmax = ninf;
    for (size_t j = 0; j < V; j += 8) {
        size_t len = FF_AVX2_LEN(j, V);
        __m256i k = FF_AVX2_MASK(len);
        vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(ninf, ff_ld256(x + j, len, k), _mm256_castsi256_ps(k)));
    }
    float m = ff_hmax256(vmax);
    __m256 vm = _mm256_set1_ps(m), se = _mm256_setzero_ps();
    for (size_t j = 0; j < V; j += 8) {
        size_t len = FF_AVX2_LEN(j, V);
        __m256i k = FF_AVX2_MASK(len);
        se = _mm256_add_ps(se, _mm256_and_ps(ff_exp256(_mm256_sub_ps(ff_ld256(x + j, len, k), vm)),
                                             _mm256_castsi256_ps(k)));
    }
    return m + logf(ff_hsum256(se));
}

/* Eight logits at a time against the list's threshold; the few that pass are
 * inserted one by one, with the same float arithmetic as the generic scan. */
void ff_topk_scan_avx2(float *top_s, int64_t *top_i, size_t *count, size_t N, const float *x, size_t V,
                       float score, float lse, int64_t base, int64_t blocked) {
    const __m256 vs = _mm256_set1_ps(score), vl = _mm256_set1_ps(lse);
    size_t j = 0;
    for (; j + 8 <= V; j += 8) {
        float thr = *count == N ? top_s[N - 1] : -INFINITY;
        __m256 c = _mm256_add_ps(vs, _mm256_sub_ps(_mm256_loadu_ps(x + j), vl));
        int bits = _mm256_movemask_ps(_mm256_cmp_ps(c, _mm256_set1_ps(thr), _CMP_GT_OQ));
        if (*count < N) bits = 0xFF;  /* the list is not full yet: every lane goes in */
        while (bits) {
            int l = __builtin_ctz(bits);
            bits &= bits - 1;
            size_t v = j + (size_t)l;
            if ((int64_t)v == blocked) continue;
            ff_topk_insert(top_s, top_i, count, N, score + (x[v] - lse), base + (int64_t)v);
        }
    }
    for (; j < V; j++) {
        if ((int64_t)j == blocked) continue;
        ff_topk_insert(top_s, top_i, count, N, score + (x[j] - lse), base + (int64_t)j);
    }
}

FF_TARGET_END

#else
float ff_row_lse_avx2(const float *x, size_t V) { return ff_row_lse_generic(x, V); }
void ff_topk_scan_avx2(float *top_s, int64_t *top_i, size_t *count, size_t N, const float *x, size_t V,
                       float score, float lse, int64_t base, int64_t blocked) {
    ff_topk_scan_generic(top_s, top_i, count, N, x, V, score, lse, base, blocked);
}
#endif
