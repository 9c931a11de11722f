/* Cross-entropy's row leaf, written once for every instruction set: compiled
 * by cross_entropy_avx2.c and cross_entropy_avx512.c (see simd/avx2.h). */

double FFV_FN(ff_ce_row)(float *dl, const float *x, size_t V, size_t t, double eps, double inv_n) {
    const float x_t = x[t]; /* before dl (which may be x) is written */
    float m = ffv_max_row(x, V);
    ffv vm = ffv_set1(m);
    /* two accumulators each: the loop is short of independent work otherwise */
    ffv se0 = ffv_zero(), se1 = se0, sx0 = se0, sx1 = se0;
    size_t j = 0;
    for (; j + 2 * FFV_W <= V; j += 2 * FFV_W) {
        ffv a = ffv_load(x + j), b = ffv_load(x + j + FFV_W);
        ffv ea = ffv_exp(ffv_sub(a, vm)), eb = ffv_exp(ffv_sub(b, vm));
        ffv_store(dl + j, ea);
        ffv_store(dl + j + FFV_W, eb);
        se0 = ffv_add(se0, ea);
        se1 = ffv_add(se1, eb);
        sx0 = ffv_add(sx0, a);
        sx1 = ffv_add(sx1, b);
    }
    for (; j < V; j += FFV_W) {
        ffv_lanes k = ffv_first(V - j);
        ffv a = ffv_ld(x + j, k);
        ffv ea = ffv_keep(k, ffv_exp(ffv_sub(a, vm)));
        ffv_st(dl + j, k, ea);
        se0 = ffv_add(se0, ea);
        sx0 = ffv_add(sx0, a);
    }
    double se = ffv_hsum(ffv_add(se0, se1)), sx = ffv_hsum(ffv_add(sx0, sx1));
    float e_t = dl[t];
    ffv c1 = ffv_set1((float)(inv_n / se)), c0 = ffv_set1((float)(eps / (double)V * inv_n));
    for (j = 0; j < V; j += FFV_W) {
        ffv_lanes k = ffv_first(V - j);
        ffv_st(dl + j, k, ffv_fmsub(ffv_ld(dl + j, k), c1, c0));
    }
    return ff_ce_row_finish(dl, V, t, eps, inv_n, m, se, sx, e_t, x_t);
}
