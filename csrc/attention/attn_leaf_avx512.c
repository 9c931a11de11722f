/* AVX-512 leaves of the attention kernels (leaf functions only: no OpenMP). */
#include <math.h>

#include "attention/attn_internal.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX512_BEGIN
#include "nn/vec_math_avx512.h"
#include "random/philox_avx512.h"

#define AI static inline __attribute__((always_inline))

/* Register tile: MR rows x NV vectors of 16 columns, the last one partial
 * (lanes tm) when TAIL. acc[r][v] sums A[r, p] * B[p, 16v..] over p in order. */
AI void tile(float *C, size_t ldc, const float *A, size_t ars, size_t acs, const float *B, size_t ldb, size_t k,
             float alpha, int accumulate, const int MR, const int NV, const int TAIL, __mmask16 tm) {
    __m512 c[6][4];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) c[r][v] = _mm512_setzero_ps();
    for (size_t p = 0; p < k; p++) {
        const float *b = B + p * ldb;
        const float *a = A + p * acs;
        __m512 bv[4];
        for (int v = 0; v < NV; v++)
            bv[v] = (TAIL && v == NV - 1) ? _mm512_maskz_loadu_ps(tm, b + 16 * v) : _mm512_loadu_ps(b + 16 * v);
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(a[r * ars]);
            for (int v = 0; v < NV; v++) c[r][v] = _mm512_fmadd_ps(av, bv[v], c[r][v]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha);
    for (int r = 0; r < MR; r++) {
        float *cr = C + r * ldc;
        for (int v = 0; v < NV; v++) {
            __m512 x = alpha == 1.0f ? c[r][v] : _mm512_mul_ps(c[r][v], va); /* x * 1 == x: skip it */
            if (TAIL && v == NV - 1) {
                if (accumulate) x = _mm512_add_ps(_mm512_maskz_loadu_ps(tm, cr + 16 * v), x);
                _mm512_mask_storeu_ps(cr + 16 * v, tm, x);
            } else {
                if (accumulate) x = _mm512_add_ps(_mm512_loadu_ps(cr + 16 * v), x);
                _mm512_storeu_ps(cr + 16 * v, x);
            }
        }
    }
}

typedef void (*tile_fn)(float *, size_t, const float *, size_t, size_t, const float *, size_t, size_t, float, int,
                        __mmask16);

#define TILE(MR, NV, T)                                                                                        \
    static void tile_##MR##_##NV##_##T(float *C, size_t ldc, const float *A, size_t ars, size_t acs,         \
                                       const float *B, size_t ldb, size_t k, float alpha, int acc, __mmask16 tm) { \
        tile(C, ldc, A, ars, acs, B, ldb, k, alpha, acc, MR, NV, T, tm);                                       \
    }
#define TILES_NV(MR) TILE(MR, 1, 0) TILE(MR, 2, 0) TILE(MR, 3, 0) TILE(MR, 4, 0) \
                     TILE(MR, 1, 1) TILE(MR, 2, 1) TILE(MR, 3, 1) TILE(MR, 4, 1)
TILES_NV(1)
TILES_NV(2)
TILES_NV(3)
TILES_NV(4)
TILES_NV(5)
TILES_NV(6)
#define ROW(MR) {{tile_##MR##_1_0, tile_##MR##_2_0, tile_##MR##_3_0, tile_##MR##_4_0}, \
                 {tile_##MR##_1_1, tile_##MR##_2_1, tile_##MR##_3_1, tile_##MR##_4_1}}
/* [mr - 1][tail][nv - 1] */
static const tile_fn g_tiles[6][2][4] = {ROW(1), ROW(2), ROW(3), ROW(4), ROW(5), ROW(6)};

static void gemm_avx512(float *C, size_t ldc, const float *A, size_t ars, size_t acs, const float *B, size_t ldb,
                        size_t m, size_t n, size_t k, float alpha, int accumulate) {
    for (size_t j0 = 0; j0 < n; j0 += 64) {
        size_t nn = n - j0 < 64 ? n - j0 : 64;
        size_t nv = (nn + 15) / 16, rem = nn % 16;
        __mmask16 tm = rem ? (__mmask16)((1u << rem) - 1u) : (__mmask16)0xFFFF;
        for (size_t i = 0; i < m; i += 6) {
            size_t mr = m - i < 6 ? m - i : 6;
            g_tiles[mr - 1][rem != 0][nv - 1](C + i * ldc + j0, ldc, A + i * ars, ars, acs, B + j0, ldb, k, alpha,
                                              accumulate, tm);
        }
    }
}

static void softmax_cols_avx512(float *ST, size_t ld, float *m, float *l, float *corr, size_t rows, size_t cols) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (size_t c = 0; c < cols; c += 16) {
        __m512 mo = _mm512_loadu_ps(m + c), mx = mo;
        for (size_t r = 0; r < rows; r++) mx = _mm512_max_ps(mx, _mm512_loadu_ps(ST + r * ld + c));
        __m512 mu = _mm512_mask_mov_ps(mx, _mm512_cmp_ps_mask(mx, ninf, _CMP_EQ_OQ), _mm512_setzero_ps());
        __m512 sum = _mm512_setzero_ps();
        for (size_t r = 0; r < rows; r++) {
            __m512 e = ff_exp512(_mm512_sub_ps(_mm512_loadu_ps(ST + r * ld + c), mu));
            _mm512_storeu_ps(ST + r * ld + c, e);
            sum = _mm512_add_ps(sum, e);
        }
        __m512 cr = ff_exp512(_mm512_sub_ps(mo, mu));
        _mm512_storeu_ps(corr + c, cr);
        _mm512_storeu_ps(l + c, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(l + c), cr), sum));
        _mm512_storeu_ps(m + c, mx);
    }
}

static void scale_rows_avx512(float *X, size_t ldx, const float *s, size_t rows, size_t n) {
    for (size_t i = 0; i < rows; i++) {
        __m512 v = _mm512_set1_ps(s[i]);
        float *x = X + i * ldx;
        for (size_t j = 0; j < n; j += 16) {
            __mmask16 t = n - j >= 16 ? (__mmask16)0xFFFF : ff_tailmask512(n - j);
            ff_st512(x + j, t, _mm512_mul_ps(ff_ld512(x + j, t), v));
        }
    }
}

static void exp_sub_cols_avx512(float *ST, size_t ld, const float *L, size_t rows, size_t cols) {
    for (size_t c = 0; c < cols; c += 16) {
        __m512 lv = _mm512_loadu_ps(L + c);
        for (size_t r = 0; r < rows; r++) {
            float *s = ST + r * ld + c;
            _mm512_storeu_ps(s, ff_exp512(_mm512_sub_ps(_mm512_loadu_ps(s), lv)));
        }
    }
}

static void dsoftmax_cols_avx512(float *dP, const float *P, size_t ld, const float *D, size_t rows, size_t cols) {
    for (size_t c = 0; c < cols; c += 16) {
        __m512 dv = _mm512_loadu_ps(D + c);
        for (size_t r = 0; r < rows; r++) {
            float *g = dP + r * ld + c;
            _mm512_storeu_ps(g, _mm512_mul_ps(_mm512_loadu_ps(P + r * ld + c), _mm512_sub_ps(_mm512_loadu_ps(g), dv)));
        }
    }
}

static float softmax_row_avx512(float *s, size_t n) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 t = n - j >= 16 ? (__mmask16)0xFFFF : ff_tailmask512(n - j);
        vmax = _mm512_max_ps(vmax, _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), t, ff_ld512(s + j, t)));
    }
    float mx = _mm512_reduce_max_ps(vmax);
    __m512 mu = _mm512_set1_ps(mx == -INFINITY ? 0.0f : mx);
    __m512 vsum = _mm512_setzero_ps();
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 t = n - j >= 16 ? (__mmask16)0xFFFF : ff_tailmask512(n - j);
        __m512 e = _mm512_maskz_mov_ps(t, ff_exp512(_mm512_sub_ps(ff_ld512(s + j, t), mu)));
        ff_st512(s + j, t, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    float sum = ff_hsum512(vsum);
    if (sum > 0.0f) {
        __m512 inv = _mm512_set1_ps(1.0f / sum);
        for (size_t j = 0; j < n; j += 16) {
            __mmask16 t = n - j >= 16 ? (__mmask16)0xFFFF : ff_tailmask512(n - j);
            ff_st512(s + j, t, _mm512_mul_ps(ff_ld512(s + j, t), inv));
        }
    }
    return mx + logf(sum);
}

static void exp_sub_row_avx512(float *s, size_t n, float L) {
    __m512 lv = _mm512_set1_ps(L);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 t = n - j >= 16 ? (__mmask16)0xFFFF : ff_tailmask512(n - j);
        ff_st512(s + j, t, ff_exp512(_mm512_sub_ps(ff_ld512(s + j, t), lv)));
    }
}

static void dsoftmax_row_avx512(float *dP, const float *P, size_t n, float D) {
    __m512 dv = _mm512_set1_ps(D);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 t = n - j >= 16 ? (__mmask16)0xFFFF : ff_tailmask512(n - j);
        ff_st512(dP + j, t, _mm512_mul_ps(ff_ld512(P + j, t), _mm512_sub_ps(ff_ld512(dP + j, t), dv)));
    }
}

static float dot_avx512(const float *a, const float *b, size_t n) {
    __m512 acc = _mm512_setzero_ps();
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 t = n - j >= 16 ? (__mmask16)0xFFFF : ff_tailmask512(n - j);
        acc = _mm512_fmadd_ps(ff_ld512(a + j, t), ff_ld512(b + j, t), acc);
    }
    return ff_hsum512(acc);
}

/* 16 Philox blocks (64 words) per call; the words around [i0, i0 + n) that
 * fall outside are computed and dropped. */
static void philox_words_avx512(uint32_t *w, uint64_t i0, size_t n, uint64_t seed, uint64_t step, uint64_t site) {
    uint64_t b = i0 >> 2, end = i0 + n;
    size_t j = 0;
    while (j < n) {
        __m512i v[4];
        uint32_t buf[64];
        ff_philox16_avx512(v, b, seed, step, site);
        for (int t = 0; t < 4; t++) _mm512_storeu_si512((void *)(buf + 16 * t), v[t]);
        uint64_t e0 = b * 4; /* flat index of buf[0] */
        uint64_t from = i0 + j, to = e0 + 64 < end ? e0 + 64 : end;
        for (uint64_t i = from; i < to; i++) w[j++] = buf[i - e0];
        b += 16;
    }
}

/* Keep factors straight in the S^T layout: lane c of a 16-lane Philox call
 * runs query c's counter, and one call's four output words are four
 * consecutive keys, so a call fills a (4 keys x 16 queries) tile with no
 * transpose. Needs every query's first index aligned to a Philox block
 * (i00 and qstride multiples of 4); otherwise one query at a time. */
static void keep_block_avx512(float *F, size_t ld, uint32_t *w, uint64_t i00, uint64_t qstride, size_t nq, size_t nk,
                              uint32_t thr, float keep, uint64_t seed, uint64_t step, uint64_t site) {
    if ((i00 | qstride) & 3) {
        ff_attn_keep_block_rows(F, ld, w, i00, qstride, nq, nk, thr, keep, seed, step, site, philox_words_avx512);
        return;
    }
    const __m512i c2i = _mm512_set1_epi32((int)(uint32_t)site), c3i = _mm512_set1_epi32((int)(uint32_t)step);
    const __m512i vthr = _mm512_set1_epi32((int)thr);
    const __m512 vkeep = _mm512_set1_ps(keep);
    const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    for (size_t c0 = 0; c0 < nq; c0 += 16) {
        /* Philox block of key 0 for queries c0 .. c0+15, as 2 x 8 64-bit lanes */
        __m512i qs = _mm512_set1_epi64((long long)(qstride >> 2));
        __m512i b_lo = _mm512_add_epi64(_mm512_set1_epi64((long long)((i00 >> 2) + c0 * (qstride >> 2))),
                                        _mm512_mullo_epi64(lane, qs));
        __m512i b_hi = _mm512_add_epi64(b_lo, _mm512_slli_epi64(qs, 3));
        for (size_t r0 = 0; r0 < nk; r0 += 4) {
            __m512i off = _mm512_set1_epi64((long long)(r0 >> 2));
            __m512i lo = _mm512_add_epi64(b_lo, off), hi = _mm512_add_epi64(b_hi, off);
            __m512i c0v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(lo)), _mm512_cvtepi64_epi32(hi), 1);
            __m512i c1v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_srli_epi64(lo, 32))),
                                             _mm512_cvtepi64_epi32(_mm512_srli_epi64(hi, 32)), 1);
            __m512i c2v = c2i, c3v = c3i;
            ff_philox10_x16(&c0v, &c1v, &c2v, &c3v, seed);
            const __m512i wv[4] = {c0v, c1v, c2v, c3v}; /* word t = key r0 + t */
            for (size_t t = 0; t < 4 && r0 + t < nk; t++) {
                __mmask16 kp = _mm512_cmpge_epu32_mask(wv[t], vthr);
                _mm512_storeu_ps(F + (r0 + t) * ld + c0, _mm512_maskz_mov_ps(kp, vkeep));
            }
        }
    }
}

/* One 16 x 16 tile in registers: 2x2 float interleaves within 128-bit lanes,
 * then two rounds of lane shuffles; 64 shuffles for 256 elements, against
 * ~3 cycles an element for the scalar loop (a strided store each). */
AI void transpose16(float *dst, size_t ldd, const float *src, size_t lds) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4g + m], lane L: column 4L + m of rows 4g .. 4g+3 */
    for (int g = 0; g < 4; g++) {
        __m512d a0 = _mm512_castps_pd(t[4 * g]), a1 = _mm512_castps_pd(t[4 * g + 1]);
        __m512d a2 = _mm512_castps_pd(t[4 * g + 2]), a3 = _mm512_castps_pd(t[4 * g + 3]);
        r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    for (int m = 0; m < 4; m++) {
        __m512 e0 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x88), o0 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xdd);
        __m512 e1 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x88), o1 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xdd);
        _mm512_storeu_ps(dst + (size_t)m * ldd, _mm512_shuffle_f32x4(e0, e1, 0x88));
        _mm512_storeu_ps(dst + (size_t)(8 + m) * ldd, _mm512_shuffle_f32x4(e0, e1, 0xdd));
        _mm512_storeu_ps(dst + (size_t)(4 + m) * ldd, _mm512_shuffle_f32x4(o0, o1, 0x88));
        _mm512_storeu_ps(dst + (size_t)(12 + m) * ldd, _mm512_shuffle_f32x4(o0, o1, 0xdd));
    }
}

/* Whole 16 x 16 tiles in registers, the ragged edges scalar. */
static void transpose_avx512(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols) {
    const size_t r16 = rows & ~(size_t)15, c16 = cols & ~(size_t)15;
    for (size_t i = 0; i < r16; i += 16)
        for (size_t j = 0; j < c16; j += 16) transpose16(dst + j * ldd + i, ldd, src + i * lds + j, lds);
    if (c16 < cols) ff_attn_transpose(dst + c16 * ldd, ldd, src + c16, lds, r16, cols - c16);
    if (r16 < rows) ff_attn_transpose(dst + r16, ldd, src + r16 * lds, lds, rows - r16, cols);
}

const ff_attn_leaves_t ff_attn_leaves_avx512 = {
    gemm_avx512,          softmax_cols_avx512, scale_rows_avx512,  exp_sub_cols_avx512,
    dsoftmax_cols_avx512, softmax_row_avx512,  exp_sub_row_avx512, dsoftmax_row_avx512,
    dot_avx512,           philox_words_avx512, keep_block_avx512,  transpose_avx512,
    ff_attn_scores_avx2,  ff_attn_weighted_sum_avx2,
};

FF_TARGET_END
#endif
