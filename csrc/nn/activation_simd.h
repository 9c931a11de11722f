/* GELU's row leaf, written once for every instruction set: compiled by
 * activation_avx2.c and activation_avx512.c (see simd/avx2.h); the same
 * function as the GEMM's fused GELU, so the two give the same bits. */

void FFV_FN(ff_gelu_row)(float *y, const float *x, size_t n) {
    for (size_t j = 0; j < n; j += FFV_W) {
        ffv_lanes t = ffv_first(n - j);
        ffv_st(y + j, t, ffv_gelu(ffv_ld(x + j, t)));
    }
}
