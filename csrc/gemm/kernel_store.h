/* The last step of a SIMD micro-kernel: the first mr rows of the finished
 * (MR, NR) tile t go through the epilogue into the (mr, nr) corner of C that
 * exists (rows of t from mr on are never read: a short tile leaves them unset).
 *
 * Include inside the kernel file's target region, after defining MR, NR,
 *   static void store_tile(const float *t, float *c, size_t ldc, const float *bias,
 *                          const ff_gemm_epi_t *epi);
 * which stores a full tile, and store_rows (the same on `rows` whole rows). */
#ifndef FF_GEMM_KERNEL_STORE_H
#define FF_GEMM_KERNEL_STORE_H

static inline void store_tile_part(const float *t, float *c, size_t ldc, size_t mr, size_t nr,
                                   const ff_gemm_epi_t *epi) {
    if (mr == MR && nr == NR) {
        store_tile(t, c, ldc, epi->bias, epi);
        return;
    }
    if (nr == NR) {
        store_rows(t, c, ldc, mr, epi->bias, epi);
        return;
    }
    /* Edge columns: run the same epilogue on a full-width copy, then store the
     * part that exists, so every element sees the same instructions. */
    float ct[MR * NR] __attribute__((aligned(64)));
    float bt[NR] __attribute__((aligned(64)));
    ff_gemm_epi_t e = *epi; /* on ct: floats */
    e.c_bf16 = 0;
    for (size_t i = 0; i < mr; i++) {
        const float *ci = ff_gemm_c_row(c, ldc, i, epi);
        for (size_t j = 0; j < nr; j++)
            ct[i * NR + j] = !epi->load_c ? 0.0f : epi->c_bf16 ? ff_bf16_value(((const uint16_t *)ci)[j]) : ci[j];
    }
    if (epi->bias)
        for (size_t j = 0; j < NR; j++) bt[j] = j < nr ? epi->bias[j] : 0.0f;
    store_rows(t, ct, NR, mr, epi->bias ? bt : NULL, &e);
    for (size_t i = 0; i < mr; i++) {
        float *ci = ff_gemm_c_row(c, ldc, i, epi);
        for (size_t j = 0; j < nr; j++) {
            if (epi->c_bf16) ((uint16_t *)ci)[j] = ff_bf16_bits(ct[i * NR + j]);
            else ci[j] = ct[i * NR + j];
        }
    }
}

#endif
