/* Softmax's row leaves, written once for every instruction set: compiled by
 * softmax_avx2.c and softmax_avx512.c (see simd/avx2.h). */

/* Lanes t of x[j..] that take part: not masked out by bm. */
static inline ffv_lanes live_lanes(const uint8_t *bm, size_t j, ffv_lanes t) {
    return bm ? ffv_lanes_where_zero(t, bm + j) : t;
}

/* Scores of lanes t (0 elsewhere). */
static inline ffv load_scores(const float *x, const float *am, size_t j, ffv_lanes t) {
    ffv s = ffv_ld(x + j, t);
    return am ? ffv_add(s, ffv_ld(am + j, t)) : s;
}

void FFV_FN(ff_softmax_fwd_row)(float *y, const float *x, const uint8_t *bm, const float *am, size_t n) {
    const ffv ninf = ffv_set1(-INFINITY);
    ffv vmax = ninf;
    for (size_t j = 0; j < n; j += FFV_W) {
        ffv_lanes t = ffv_first(n - j);
        /* select in a register, then an unmasked max: a masked max with a
         * memory operand and a just-computed mask was 3x slower on Zen 5 */
        vmax = ffv_max(vmax, ffv_select(live_lanes(bm, j, t), load_scores(x, am, j, t), ninf));
    }
    float m = ffv_hmax(vmax);
    if (!isfinite(m)) m = 0.0f; /* all masked: exp(-inf - 0) = 0, not exp(nan) */
    ffv vm = ffv_set1(m);
    ffv vsum = ffv_zero();
    for (size_t j = 0; j < n; j += FFV_W) {
        ffv_lanes t = ffv_first(n - j);
        ffv e = ffv_keep(live_lanes(bm, j, t), ffv_exp(ffv_sub(load_scores(x, am, j, t), vm)));
        ffv_st(y + j, t, e);
        vsum = ffv_add(vsum, e);
    }
    float sum = ffv_hsum(vsum);
    if (sum > 0.0f) ffv_scale_row(y, n, 1.0f / sum);
}

void FFV_FN(ff_softmax_bwd_row)(float *dx, const float *dy, const float *y, size_t n) {
    ffv acc = ffv_zero();
    for (size_t j = 0; j < n; j += FFV_W) {
        ffv_lanes t = ffv_first(n - j);
        acc = ffv_fmadd(ffv_ld(dy + j, t), ffv_ld(y + j, t), acc);
    }
    ffv d = ffv_set1(ffv_hsum(acc));
    for (size_t j = 0; j < n; j += FFV_W) {
        ffv_lanes t = ffv_first(n - j);
        ffv_st(dx + j, t, ffv_mul(ffv_ld(y + j, t), ffv_sub(ffv_ld(dy + j, t), d)));
    }
}
