/* The Adam/AdamW update leaf, written once for every instruction set:
 * compiled by adam_avx2.c and adam_avx512.c (see simd/avx2.h). No FMA: every
 * rounding is the scalar leaf's (adam.c), so every path gives its bits. */

/* Half the lanes of the double-precision tail: p - step * m / (sqrt(v) / sqrt_bc2 + eps). */
static inline ffvd final_half(ffvd p, ffvd m, ffvd sv, ffvd step, ffvd sbc2, ffvd eps) {
    ffvd denom = ffvd_add(ffvd_div(sv, sbc2), eps);
    return ffvd_sub(p, ffvd_mul(step, ffvd_div(m, denom)));
}

void FFV_FN(ff_adam_range)(float *p, float *m, float *v, const float *g, size_t n, const ff_adam_args *a) {
    const ffv b1 = ffv_set1(a->beta1), omb1 = ffv_set1(a->one_minus_beta1);
    const ffv b2 = ffv_set1(a->beta2), omb2 = ffv_set1(a->one_minus_beta2);
    const ffv wd = ffv_set1(a->wd), decay = ffv_set1(a->decay);
    const ffvd step = ffvd_set1(a->step_size), sbc2 = ffvd_set1(a->sqrt_bc2), eps = ffvd_set1(a->eps);
    for (size_t i = 0; i < n; i += FFV_W) {
        ffv_lanes k = ffv_first(n - i);
        ffv pi = ffv_ld(p + i, k), gi = ffv_ld(g + i, k);
        if (a->decoupled) pi = ffv_mul(pi, decay);
        if (a->l2) gi = ffv_add(gi, ffv_mul(wd, pi));
        ffv mi = ffv_add(ffv_mul(ffv_ld(m + i, k), b1), ffv_mul(omb1, gi));
        ffv vi = ffv_add(ffv_mul(ffv_ld(v + i, k), b2), ffv_mul(ffv_mul(omb2, gi), gi));
        ffv sv = ffv_sqrt(vi);
        ffvd lo = final_half(ffv_lo_to_d(pi), ffv_lo_to_d(mi), ffv_lo_to_d(sv), step, sbc2, eps);
        ffvd hi = final_half(ffv_hi_to_d(pi), ffv_hi_to_d(mi), ffv_hi_to_d(sv), step, sbc2, eps);
        ffv_st(p + i, k, ffv_from_d(lo, hi));
        ffv_st(m + i, k, mi);
        ffv_st(v + i, k, vi);
    }
}
