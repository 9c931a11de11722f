/* The embedding's row leaves, written once for every instruction set:
 * compiled by embedding_avx2.c and embedding_avx512.c (see simd/avx2.h).
 * Separate multiply and add (no FMA), so the bits are the portable leaves'. */

void FFV_FN(ff_embedding_row)(float *y, const float *w, const float *p, size_t d, float scale) {
    const ffv s = ffv_set1(scale);
    for (size_t j = 0; j < d; j += FFV_W) {
        ffv_lanes k = ffv_first(d - j);
        ffv_st(y + j, k, ffv_add(ffv_mul(ffv_ld(w + j, k), s), ffv_ld(p + j, k)));
    }
}

void FFV_FN(ff_embedding_acc)(float *dw, const float *g, size_t d, float scale, int first) {
    const ffv s = ffv_set1(scale);
    for (size_t j = 0; j < d; j += FFV_W) {
        ffv_lanes k = ffv_first(d - j);
        ffv acc = first ? ffv_zero() : ffv_ld(dw + j, k);
        ffv_st(dw + j, k, ffv_add(acc, ffv_mul(ffv_ld(g + j, k), s)));
    }
}
