/* AVX2+FMA leaves of the attention kernels (leaf functions only: no OpenMP). */
#include <math.h>

#include "attention/attn_internal.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX2_BEGIN
#include "nn/vec_math_avx2.h"

#define AI static inline __attribute__((always_inline))

/* Register tile: MR rows x NV vectors of 8 columns (12 accumulators at most),
 * the last vector partial (lanes tm) when TAIL. */
AI void tile(float *C, size_t ldc, const float *A, size_t ars, size_t acs, const float *B, size_t ldb, size_t k,
             float alpha, int accumulate, const int MR, const int NV, const int TAIL, __m256i tm) {
    __m256 c[6][2];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) c[r][v] = _mm256_setzero_ps();
    for (size_t p = 0; p < k; p++) {
        const float *b = B + p * ldb;
        const float *a = A + p * acs;
        __m256 bv[2];
        for (int v = 0; v < NV; v++)
            bv[v] = (TAIL && v == NV - 1) ? _mm256_maskload_ps(b + 8 * v, tm) : _mm256_loadu_ps(b + 8 * v);
        for (int r = 0; r < MR; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * ars);
            for (int v = 0; v < NV; v++) c[r][v] = _mm256_fmadd_ps(av, bv[v], c[r][v]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha);
    for (int r = 0; r < MR; r++) {
        float *cr = C + r * ldc;
        for (int v = 0; v < NV; v++) {
            __m256 x = _mm256_mul_ps(c[r][v], va);
            if (TAIL && v == NV - 1) {
                if (accumulate) x = _mm256_add_ps(_mm256_maskload_ps(cr + 8 * v, tm), x);
                _mm256_maskstore_ps(cr + 8 * v, tm, x);
            } else {
                if (accumulate) x = _mm256_add_ps(_mm256_loadu_ps(cr + 8 * v), x);
                _mm256_storeu_ps(cr + 8 * v, x);
            }
        }
    }
}

typedef void (*tile_fn)(float *, size_t, const float *, size_t, size_t, const float *, size_t, size_t, float, int,
                        __m256i);

#define TILE(MR, NV, T)                                                                                        \
    static void tile_##MR##_##NV##_##T(float *C, size_t ldc, const float *A, size_t ars, size_t acs,         \
                                       const float *B, size_t ldb, size_t k, float alpha, int acc, __m256i tm) { \
        tile(C, ldc, A, ars, acs, B, ldb, k, alpha, acc, MR, NV, T, tm);                                       \
    }
#define TILES_NV(MR) TILE(MR, 1, 0) TILE(MR, 2, 0) TILE(MR, 1, 1) TILE(MR, 2, 1)
TILES_NV(1)
TILES_NV(2)
TILES_NV(3)
TILES_NV(4)
TILES_NV(5)
TILES_NV(6)
#define ROW(MR) {{tile_##MR##_1_0, tile_##MR##_2_0}, {tile_##MR##_1_1, tile_##MR##_2_1}}
/* [mr - 1][tail][nv - 1] */
static const tile_fn g_tiles[6][2][2] = {ROW(1), ROW(2), ROW(3), ROW(4), ROW(5), ROW(6)};

static void gemm_avx2(float *C, size_t ldc, const float *A, size_t ars, size_t acs, const float *B, size_t ldb,
                      size_t m, size_t n, size_t k, float alpha, int accumulate) {
    for (size_t j0 = 0; j0 < n; j0 += 16) {
        size_t nn = n - j0 < 16 ? n - j0 : 16;
        size_t nv = (nn + 7) / 8, rem = nn % 8;
        __m256i tm = ff_tailmask256(rem ? rem : 8);
        for (size_t i = 0; i < m; i += 6) {
            size_t mr = m - i < 6 ? m - i : 6;
            g_tiles[mr - 1][rem != 0][nv - 1](C + i * ldc + j0, ldc, A + i * ars, ars, acs, B + j0, ldb, k, alpha,
                                              accumulate, tm);
        }
    }
}

static void softmax_cols_avx2(float *ST, size_t ld, float *m, float *l, float *corr, size_t rows, size_t cols) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (size_t c = 0; c < cols; c += 8) {
        __m256 mo = _mm256_loadu_ps(m + c), mx = mo;
        for (size_t r = 0; r < rows; r++) mx = _mm256_max_ps(mx, _mm256_loadu_ps(ST + r * ld + c));
        __m256 mu = _mm256_blendv_ps(mx, _mm256_setzero_ps(), _mm256_cmp_ps(mx, ninf, _CMP_EQ_OQ));
        __m256 sum = _mm256_setzero_ps();
        for (size_t r = 0; r < rows; r++) {
            __m256 e = ff_exp256(_mm256_sub_ps(_mm256_loadu_ps(ST + r * ld + c), mu));
            _mm256_storeu_ps(ST + r * ld + c, e);
            sum = _mm256_add_ps(sum, e);
        }
        __m256 cr = ff_exp256(_mm256_sub_ps(mo, mu));
        _mm256_storeu_ps(corr + c, cr);
        _mm256_storeu_ps(l + c, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(l + c), cr), sum));
        _mm256_storeu_ps(m + c, mx);
    }
}

static void scale_rows_avx2(float *X, size_t ldx, const float *s, size_t rows, size_t n) {
    for (size_t i = 0; i < rows; i++) {
        __m256 v = _mm256_set1_ps(s[i]);
        float *x = X + i * ldx;
        size_t j = 0;
        for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), v));
        for (; j < n; j++) x[j] *= s[i];
    }
}

static void exp_sub_cols_avx2(float *ST, size_t ld, const float *L, size_t rows, size_t cols) {
    for (size_t c = 0; c < cols; c += 8) {
        __m256 lv = _mm256_loadu_ps(L + c);
        for (size_t r = 0; r < rows; r++) {
            float *s = ST + r * ld + c;
            _mm256_storeu_ps(s, ff_exp256(_mm256_sub_ps(_mm256_loadu_ps(s), lv)));
        }
    }
}

static void dsoftmax_cols_avx2(float *dP, const float *P, size_t ld, const float *D, size_t rows, size_t cols) {
    for (size_t c = 0; c < cols; c += 8) {
        __m256 dv = _mm256_loadu_ps(D + c);
        for (size_t r = 0; r < rows; r++) {
            float *g = dP + r * ld + c;
            _mm256_storeu_ps(g, _mm256_mul_ps(_mm256_loadu_ps(P + r * ld + c), _mm256_sub_ps(_mm256_loadu_ps(g), dv)));
        }
    }
}

static float softmax_row_avx2(float *s, size_t n) {
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
    float mx = ff_hmax256(vmax);
    for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    float muf = mx == -INFINITY ? 0.0f : mx;
    __m256 mu = _mm256_set1_ps(muf);
    __m256 vsum = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 e = ff_exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), mu));
        _mm256_storeu_ps(s + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    if (j < n) {
        __m256i t = ff_tailmask256(n - j);
        __m256 x = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(s + j, t), _mm256_castsi256_ps(t));
        __m256 e = ff_exp256(_mm256_sub_ps(x, mu));
        _mm256_maskstore_ps(s + j, t, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    float sum = ff_hsum256(vsum);
    if (sum > 0.0f) {
        __m256 inv = _mm256_set1_ps(1.0f / sum);
        for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
        for (; j < n; j++) s[j] *= 1.0f / sum;
    }
    return mx + logf(sum);
}

static void exp_sub_row_avx2(float *s, size_t n, float L) {
    __m256 lv = _mm256_set1_ps(L);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, ff_exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), lv)));
    if (j < n) {
        __m256i t = ff_tailmask256(n - j);
        _mm256_maskstore_ps(s + j, t, ff_exp256(_mm256_sub_ps(_mm256_maskload_ps(s + j, t), lv)));
    }
}

static void dsoftmax_row_avx2(float *dP, const float *P, size_t n, float D) {
    __m256 dv = _mm256_set1_ps(D);
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dP + j, _mm256_mul_ps(_mm256_loadu_ps(P + j), _mm256_sub_ps(_mm256_loadu_ps(dP + j), dv)));
    for (; j < n; j++) dP[j] = P[j] * (dP[j] - D);
}

static float dot_avx2(const float *a, const float *b, size_t n) {
    __m256 acc = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= n; j += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), acc);
    if (j < n) {
        __m256i t = ff_tailmask256(n - j);
        acc = _mm256_fmadd_ps(_mm256_maskload_ps(a + j, t), _mm256_maskload_ps(b + j, t), acc);
    }
    return ff_hsum256(acc);
}

/* Four keys at a time (four independent chains keep the loads in flight),
 * each summed exactly as dot_avx2 sums it. */
void ff_attn_scores_avx2(float *s, const float *q, const float *const *keys, size_t n, size_t dk, float scale) {
    const size_t full = dk & ~(size_t)7;
    const __m256i t = ff_tailmask256(dk > full ? dk - full : 8);
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *k0 = keys[j], *k1 = keys[j + 1], *k2 = keys[j + 2], *k3 = keys[j + 3];
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t c = 0;
        for (; c < full; c += 8) {
            const __m256 qv = _mm256_loadu_ps(q + c);
            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + c), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + c), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + c), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + c), a3);
        }
        if (c < dk) {
            const __m256 qv = _mm256_maskload_ps(q + c, t);
            a0 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k0 + c, t), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k1 + c, t), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k2 + c, t), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k3 + c, t), a3);
        }
        s[j] = scale * ff_hsum256(a0), s[j + 1] = scale * ff_hsum256(a1);
        s[j + 2] = scale * ff_hsum256(a2), s[j + 3] = scale * ff_hsum256(a3);
    }
    for (; j < n; j++) s[j] = scale * dot_avx2(q, keys[j], dk);
}

/* Up to 64 columns of o in registers (NV vectors, the last partial when
 * TAIL), every element one chain over j in order. */
AI void weighted_sum_block(float *o, const float *p, const float *const *values, size_t c0, size_t n, const int NV,
                           const int TAIL, __m256i tm) {
    __m256 acc[8];
    for (int u = 0; u < NV; u++) acc[u] = _mm256_setzero_ps();
    for (size_t j = 0; j < n; j++) {
        const __m256 pj = _mm256_broadcast_ss(p + j);
        const float *vr = values[j] + c0;
        for (int u = 0; u < NV; u++)
            acc[u] = _mm256_fmadd_ps(pj, (TAIL && u == NV - 1) ? _mm256_maskload_ps(vr + 8 * u, tm)
                                                               : _mm256_loadu_ps(vr + 8 * u), acc[u]);
    }
    for (int u = 0; u < NV; u++) {
        if (TAIL && u == NV - 1)
            _mm256_maskstore_ps(o + 8 * u, tm, acc[u]);
        else
            _mm256_storeu_ps(o + 8 * u, acc[u]);
    }
}

typedef void (*wsum_fn)(float *, const float *, const float *const *, size_t, size_t, __m256i);
#define WSUM(NV, T)                                                                                     \
    static void wsum_##NV##_##T(float *o, const float *p, const float *const *v, size_t c0, size_t n,    \
                                __m256i tm) {                                                           \
        weighted_sum_block(o, p, v, c0, n, NV, T, tm);                                                  \
    }
#define WSUMS(NV) WSUM(NV, 0) WSUM(NV, 1)
WSUMS(1)
WSUMS(2)
WSUMS(3)
WSUMS(4)
WSUMS(5)
WSUMS(6)
WSUMS(7)
WSUMS(8)
/* [nv - 1][tail] */
static const wsum_fn g_wsums[8][2] = {{wsum_1_0, wsum_1_1}, {wsum_2_0, wsum_2_1}, {wsum_3_0, wsum_3_1},
                                      {wsum_4_0, wsum_4_1}, {wsum_5_0, wsum_5_1}, {wsum_6_0, wsum_6_1},
                                      {wsum_7_0, wsum_7_1}, {wsum_8_0, wsum_8_1}};

void ff_attn_weighted_sum_avx2(float *o, const float *p, const float *const *values, size_t n, size_t dk) {
    for (size_t c = 0; c < dk; c += 64) {
        const size_t w = dk - c < 64 ? dk - c : 64, rem = w % 8;
        g_wsums[(w + 7) / 8 - 1][rem != 0](o + c, p, values, c, n, ff_tailmask256(rem ? rem : 8));
    }
}

const ff_attn_leaves_t ff_attn_leaves_avx2 = {
    gemm_avx2,          softmax_cols_avx2, scale_rows_avx2,  exp_sub_cols_avx2,
    dsoftmax_cols_avx2, softmax_row_avx2,  exp_sub_row_avx2, dsoftmax_row_avx2,
    dot_avx2,           ff_attn_philox_words_scalar, ff_attn_keep_block_scalar, ff_attn_transpose,
    ff_attn_scores_avx2, ff_attn_weighted_sum_avx2,
};

FF_TARGET_END
#endif
