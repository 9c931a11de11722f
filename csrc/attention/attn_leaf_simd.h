/* The attention leaves, written once for every instruction set: compiled by
 * attn_leaf_avx2.c and attn_leaf_avx512.c (see simd/avx2.h). Leaf functions
 * only: no OpenMP. */

#define AI static inline __attribute__((always_inline))

/* The register tile of gemm: up to 6 rows x TILE_NV vectors (12 accumulators
 * on AVX2's 16 registers, 24 on AVX-512's 32). */
#if FFV_W == 8
#define TILE_NV 2
#else
#define TILE_NV 4
#endif

/* MR rows x NV vectors of C, the last vector partial (lanes tm) when TAIL;
 * c[r][v] sums A[r, p] * B[p, W v ..] over p in order. */
AI void tile(float *C, size_t ldc, const float *A, size_t ars, size_t acs, const float *B, size_t ldb, size_t k,
             float alpha, int accumulate, const int MR, const int NV, const int TAIL, ffv_lanes tm) {
    ffv c[6][TILE_NV];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) c[r][v] = ffv_zero();
    for (size_t p = 0; p < k; p++) {
        const float *b = B + p * ldb;
        const float *a = A + p * acs;
        ffv bv[TILE_NV];
        for (int v = 0; v < NV; v++) bv[v] = (TAIL && v == NV - 1) ? ffv_ld(b + FFV_W * v, tm) : ffv_load(b + FFV_W * v);
        for (int r = 0; r < MR; r++) {
            ffv av = ffv_set1(a[r * ars]);
            for (int v = 0; v < NV; v++) c[r][v] = ffv_fmadd(av, bv[v], c[r][v]);
        }
    }
    ffv va = ffv_set1(alpha);
    for (int r = 0; r < MR; r++) {
        float *cr = C + r * ldc;
        for (int v = 0; v < NV; v++) {
            ffv_lanes t = (TAIL && v == NV - 1) ? tm : ffv_first(FFV_W);
            ffv x = alpha == 1.0f ? c[r][v] : ffv_mul(c[r][v], va); /* x * 1 == x: skip it */
            if (accumulate) x = ffv_add(ffv_ld(cr + FFV_W * v, t), x);
            ffv_st(cr + FFV_W * v, t, x);
        }
    }
}

typedef void (*tile_fn)(float *, size_t, const float *, size_t, size_t, const float *, size_t, size_t, float, int,
                        ffv_lanes);

#define TILE(MR, NV, T)                                                                                            \
    static void tile_##MR##_##NV##_##T(float *C, size_t ldc, const float *A, size_t ars, size_t acs,             \
                                       const float *B, size_t ldb, size_t k, float alpha, int acc, ffv_lanes tm) { \
        tile(C, ldc, A, ars, acs, B, ldb, k, alpha, acc, MR, NV, T, tm);                                           \
    }
#if TILE_NV == 2
#define TILES(MR) TILE(MR, 1, 0) TILE(MR, 2, 0) TILE(MR, 1, 1) TILE(MR, 2, 1)
#define ROW(MR) {{tile_##MR##_1_0, tile_##MR##_2_0}, {tile_##MR##_1_1, tile_##MR##_2_1}}
#else
#define TILES(MR) TILE(MR, 1, 0) TILE(MR, 2, 0) TILE(MR, 3, 0) TILE(MR, 4, 0) \
                  TILE(MR, 1, 1) TILE(MR, 2, 1) TILE(MR, 3, 1) TILE(MR, 4, 1)
#define ROW(MR) {{tile_##MR##_1_0, tile_##MR##_2_0, tile_##MR##_3_0, tile_##MR##_4_0}, \
                 {tile_##MR##_1_1, tile_##MR##_2_1, tile_##MR##_3_1, tile_##MR##_4_1}}
#endif
TILES(1)
TILES(2)
TILES(3)
TILES(4)
TILES(5)
TILES(6)
/* [mr - 1][tail][nv - 1] */
static const tile_fn g_tiles[6][2][TILE_NV] = {ROW(1), ROW(2), ROW(3), ROW(4), ROW(5), ROW(6)};

static void gemm(float *C, size_t ldc, const void *Av, size_t ars, size_t acs, const void *Bv, size_t ldb, size_t m,
                 size_t n, size_t k, float alpha, int accumulate, int storage) {
    (void)storage; /* 0: floats (attn_internal.h) */
    const float *A = Av, *B = Bv;
    const size_t NB = TILE_NV * FFV_W;
    for (size_t j0 = 0; j0 < n; j0 += NB) {
        size_t nn = n - j0 < NB ? n - j0 : NB;
        size_t nv = (nn + FFV_W - 1) / FFV_W, rem = nn % FFV_W;
        ffv_lanes tm = ffv_first(rem ? rem : FFV_W);
        for (size_t i = 0; i < m; i += 6) {
            size_t mr = m - i < 6 ? m - i : 6;
            g_tiles[mr - 1][rem != 0][nv - 1](C + i * ldc + j0, ldc, A + i * ars, ars, acs, B + j0, ldb, k, alpha,
                                              accumulate, tm);
        }
    }
}

static void softmax_cols(float *ST, size_t ld, float *m, float *l, float *corr, size_t rows, size_t cols) {
    const ffv ninf = ffv_set1(-INFINITY);
    for (size_t c = 0; c < cols; c += FFV_W) {
        ffv mo = ffv_load(m + c), mx = mo;
        for (size_t r = 0; r < rows; r++) mx = ffv_max(mx, ffv_load(ST + r * ld + c));
        ffv mu = ffv_select(ffv_eq(mx, ninf), ffv_zero(), mx);
        ffv sum = ffv_zero();
        for (size_t r = 0; r < rows; r++) {
            ffv e = ffv_exp(ffv_sub(ffv_load(ST + r * ld + c), mu));
            ffv_store(ST + r * ld + c, e);
            sum = ffv_add(sum, e);
        }
        ffv cr = ffv_exp(ffv_sub(mo, mu));
        ffv_store(corr + c, cr);
        ffv_store(l + c, ffv_add(ffv_mul(ffv_load(l + c), cr), sum));
        ffv_store(m + c, mx);
    }
}

static void scale_rows(float *X, size_t ldx, const float *s, size_t rows, size_t n) {
    for (size_t i = 0; i < rows; i++) ffv_scale_row(X + i * ldx, n, s[i]);
}

static void exp_sub_cols(float *ST, size_t ld, const float *L, size_t rows, size_t cols) {
    for (size_t c = 0; c < cols; c += FFV_W) {
        ffv lv = ffv_load(L + c);
        for (size_t r = 0; r < rows; r++) {
            float *s = ST + r * ld + c;
            ffv_store(s, ffv_exp(ffv_sub(ffv_load(s), lv)));
        }
    }
}

static void dsoftmax_cols(float *dP, const float *P, size_t ld, const float *D, size_t rows, size_t cols) {
    for (size_t c = 0; c < cols; c += FFV_W) {
        ffv dv = ffv_load(D + c);
        for (size_t r = 0; r < rows; r++) {
            float *g = dP + r * ld + c;
            ffv_store(g, ffv_mul(ffv_load(P + r * ld + c), ffv_sub(ffv_load(g), dv)));
        }
    }
}

static float softmax_row(float *s, size_t n) {
    float mx = ffv_max_row(s, n);
    ffv mu = ffv_set1(mx == -INFINITY ? 0.0f : mx);
    ffv vsum = ffv_zero();
    for (size_t j = 0; j < n; j += FFV_W) {
        ffv_lanes t = ffv_first(n - j);
        ffv e = ffv_keep(t, ffv_exp(ffv_sub(ffv_ld(s + j, t), mu)));
        ffv_st(s + j, t, e);
        vsum = ffv_add(vsum, e);
    }
    float sum = ffv_hsum(vsum);
    if (sum > 0.0f) ffv_scale_row(s, n, 1.0f / sum);
    return mx + logf(sum);
}

static void exp_sub_row(float *s, size_t n, float L) {
    ffv lv = ffv_set1(L);
    for (size_t j = 0; j < n; j += FFV_W) {
        ffv_lanes t = ffv_first(n - j);
        ffv_st(s + j, t, ffv_exp(ffv_sub(ffv_ld(s + j, t), lv)));
    }
}

static void dsoftmax_row(float *dP, const float *P, size_t n, float D) {
    ffv dv = ffv_set1(D);
    for (size_t j = 0; j < n; j += FFV_W) {
        ffv_lanes t = ffv_first(n - j);
        ffv_st(dP + j, t, ffv_mul(ffv_ld(P + j, t), ffv_sub(ffv_ld(dP + j, t), dv)));
    }
}

static float dot(const float *a, const float *b, size_t n) {
    ffv acc = ffv_zero();
    for (size_t j = 0; j < n; j += FFV_W) {
        ffv_lanes t = ffv_first(n - j);
        acc = ffv_fmadd(ffv_ld(a + j, t), ffv_ld(b + j, t), acc);
    }
    return ffv_hsum(acc);
}

/* dst (cols, rows; ldd) = src^T: whole W x W tiles in registers, the ragged
 * edges scalar. */
static void transpose(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols) {
    const size_t rw = rows & ~(size_t)(FFV_W - 1), cw = cols & ~(size_t)(FFV_W - 1);
    for (size_t i = 0; i < rw; i += FFV_W)
        for (size_t j = 0; j < cw; j += FFV_W) {
            ffv r[FFV_W];
            for (int q = 0; q < FFV_W; q++) r[q] = ffv_load(src + (i + q) * lds + j);
            ffv_transpose(r);
            for (int q = 0; q < FFV_W; q++) ffv_store(dst + (j + q) * ldd + i, r[q]);
        }
    if (cw < cols) ff_attn_transpose(dst + cw * ldd, ldd, src + cw, lds, rw, cols - cw);
    if (rw < rows) ff_attn_transpose(dst + rw, ldd, src + rw * lds, lds, rows - rw, cols);
}

#if FFV_W == 8
/* The row leaves (cached decoding), AVX2 only: they are memory-bound, so the
 * AVX-512 table shares these. */

/* Four keys at a time (four independent chains keep the loads in flight),
 * each summed exactly as dot sums it. */
void ff_attn_scores_avx2(float *s, const float *q, const float *const *keys, size_t n, size_t dk, float scale) {
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *k0 = keys[j], *k1 = keys[j + 1], *k2 = keys[j + 2], *k3 = keys[j + 3];
        ffv a0 = ffv_zero(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t c = 0; c < dk; c += FFV_W) {
            const ffv_lanes t = ffv_first(dk - c);
            const ffv qv = ffv_ld(q + c, t);
            a0 = ffv_fmadd(qv, ffv_ld(k0 + c, t), a0);
            a1 = ffv_fmadd(qv, ffv_ld(k1 + c, t), a1);
            a2 = ffv_fmadd(qv, ffv_ld(k2 + c, t), a2);
            a3 = ffv_fmadd(qv, ffv_ld(k3 + c, t), a3);
        }
        s[j] = scale * ffv_hsum(a0), s[j + 1] = scale * ffv_hsum(a1);
        s[j + 2] = scale * ffv_hsum(a2), s[j + 3] = scale * ffv_hsum(a3);
    }
    for (; j < n; j++) s[j] = scale * dot(q, keys[j], dk);
}

/* Up to 64 columns of o in registers (NV vectors, the last partial when
 * TAIL), every element one chain over j in order. */
AI void weighted_sum_block(float *o, const float *p, const float *const *values, size_t c0, size_t n, const int NV,
                           const int TAIL, ffv_lanes tm) {
    ffv acc[8];
    for (int u = 0; u < NV; u++) acc[u] = ffv_zero();
    for (size_t j = 0; j < n; j++) {
        const ffv pj = ffv_set1(p[j]);
        const float *vr = values[j] + c0;
        for (int u = 0; u < NV; u++)
            acc[u] = ffv_fmadd(pj, (TAIL && u == NV - 1) ? ffv_ld(vr + 8 * u, tm) : ffv_load(vr + 8 * u), acc[u]);
    }
    for (int u = 0; u < NV; u++) ffv_st(o + 8 * u, (TAIL && u == NV - 1) ? tm : ffv_first(8), acc[u]);
}

typedef void (*wsum_fn)(float *, const float *, const float *const *, size_t, size_t, ffv_lanes);
#define WSUM(NV, T)                                                                                  \
    static void wsum_##NV##_##T(float *o, const float *p, const float *const *v, size_t c0, size_t n, \
                                ffv_lanes tm) {                                                      \
        weighted_sum_block(o, p, v, c0, n, NV, T, tm);                                               \
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
        g_wsums[(w + 7) / 8 - 1][rem != 0](o + c, p, values, c, n, ffv_first(rem ? rem : 8));
    }
}
#endif

const ff_attn_leaves_t FFV_FN(ff_attn_leaves) = {
    .gemm = gemm,
    .softmax_cols = softmax_cols,
    .scale_rows = scale_rows,
    .exp_sub_cols = exp_sub_cols,
    .dsoftmax_cols = dsoftmax_cols,
    .softmax_row = softmax_row,
    .exp_sub_row = exp_sub_row,
    .dsoftmax_row = dsoftmax_row,
    .dot = dot,
#if FFV_W == 16 /* AVX-512's own dropout words (attn_dropout_avx512.c) */
    .philox_words = ff_attn_philox_words_avx512,
    .keep_block = ff_attn_keep_block_avx512,
#else
    .philox_words = ff_attn_philox_words_scalar,
    .keep_block = ff_attn_keep_block_scalar,
#endif
    .transpose = transpose,
    .scores = ff_attn_scores_avx2,
    .weighted_sum = ff_attn_weighted_sum_avx2,
    .round_bf16 = FFV_FN(ff_gemm_round_bf16), /* the bf16 GEMM's (gemm/pack_simd.h) */
};
