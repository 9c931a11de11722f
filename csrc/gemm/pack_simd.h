/* Packing for the SIMD micro-kernels, written once for every instruction
 * set: compiled by pack_avx2.c and pack_avx512.c (see simd/avx2.h). The
 * layouts of pack.c: W x W register transposes for panels contiguous along k
 * (A as stored, B^T), vector copies the other way round, since at per-head
 * sizes packing otherwise costs as much as the product. Panels of other
 * widths than the kernel's go to the portable routines. */
#define MR FF_GEMM_SIMD_MR(FFV_W)
#define NR FF_GEMM_SIMD_NR(FFV_W)
#define KERNEL_WIDTH(W) ((W) == MR || (W) == NR || (W) == 16)

/* Element (r, p) at src[r*ld + p] -> dst[p*W + r], a full panel; inlined
 * per width, so the partial stores of a narrow panel are straight-line code. */
static inline __attribute__((always_inline)) void pack_rows_t(float *dst, const float *src, size_t ld, size_t kc, size_t W) {
    size_t p = 0;
    for (; p + FFV_W <= kc; p += FFV_W) {
        for (size_t r0 = 0; r0 < W; r0 += FFV_W) {
            const size_t rows = W - r0 < FFV_W ? W - r0 : FFV_W;
            ffv v[FFV_W];
            for (size_t i = 0; i < FFV_W; i++) v[i] = i < rows ? ffv_load(src + (r0 + i) * ld + p) : ffv_zero();
            ffv_transpose(v);
            for (int q = 0; q < FFV_W; q++) ffv_store_first(dst + (p + q) * W + r0, rows, v[q]);
        }
    }
    for (; p < kc; p++)
        for (size_t r = 0; r < W; r++) dst[p * W + r] = src[r * ld + p];
}

void FFV_FN(ff_gemm_pack_rows)(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {
    if (w == W && W == MR)
        pack_rows_t(dst, src, ld, kc, MR);
    else if (w == W && W == NR)
        pack_rows_t(dst, src, ld, kc, NR);
    else if (w == W && W == 16)
        pack_rows_t(dst, src, ld, kc, 16);
    else
        ff_gemm_pack_rows(dst, src, ld, kc, w, W);
}

/* Element (p, j) at src[p*ld + j] -> dst[p*W + j]: vector copies, the
 * missing columns loaded as zeros. */
void FFV_FN(ff_gemm_pack_cols)(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {
    if (!KERNEL_WIDTH(W)) {
        ff_gemm_pack_cols(dst, src, ld, kc, w, W);
        return;
    }
    const size_t whole = w == W ? W / FFV_W * FFV_W : 0; /* columns in plain vector copies */
    for (size_t p = 0; p < kc; p++) {
        const float *s = src + p * ld;
        float *d = dst + p * W;
        size_t j = 0;
        for (; j < whole; j += FFV_W) ffv_store(d + j, ffv_load(s + j));
        for (; j < W; j += FFV_W) ffv_store_first(d + j, W - j, ffv_ld(s + j, ffv_first(w > j ? w - j : 0)));
    }
}

/* src rounded to bf16 into dst (still fp32 values; dst may be src). */
void FFV_FN(ff_gemm_round_bf16)(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i += FFV_W) {
        ffv_lanes t = ffv_first(n - i);
        ffv_st(dst + i, t, ffv_round_bf16(ffv_ld(src + i, t)));
    }
}
