/* The GEMM epilogue (gemm_internal.h's ff_gemm_epi_t) on a finished MR x NR
 * tile, written once: compiled with the fp32 micro-kernel (kernel_simd.h,
 * for AVX2 and AVX-512) and by epilogue_avx512bf16.c for the bf16 kernels
 * (AMX, AVX512-BF16), whose CPUs round a bf16 C with vcvtneps2bf16. */
#define MR FF_GEMM_SIMD_MR(FFV_W)
#define NR FF_GEMM_SIMD_NR(FFV_W)
#define NV (NR / FFV_W)
_Static_assert(NV == 2, "the kernel holds two vectors of C per row");

/* The epilogue of gemm_internal.h on `rows` whole rows of NR ([rows][NR] at
 * t): c has ldc, bias has NR; C floats, or bf16 values when c_bf16 (a
 * constant of each copy: no branch in the loop). */
static inline __attribute__((always_inline)) void store_rows_as(const float *t, float *c, size_t ldc, size_t rows,
                                                                const float *bias, const ff_gemm_epi_t *epi,
                                                                const int c_bf16) {
    const ffv valpha = ffv_set1(epi->alpha), vbeta = ffv_set1(epi->beta);
    const ffv zero = ffv_zero();
    const int beta1 = epi->beta == 1.0f;
#pragma GCC unroll 16
    for (size_t i = 0; i < rows; i++) {
        float *ci = c_bf16 ? (float *)((uint16_t *)c + i * ldc) : c + i * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            ffv x = ffv_mul(valpha, ffv_load(t + i * NR + FFV_W * v));
            if (epi->load_c) {
                ffv cv = c_bf16 ? ffv_load_bf16((const uint16_t *)ci + FFV_W * v) : ffv_load(ci + FFV_W * v);
                x = ffv_add(x, beta1 ? cv : ffv_mul(vbeta, cv));
            }
            if (bias) x = ffv_add(x, ffv_load(bias + FFV_W * v));
            if (epi->act == FF_ACT_RELU) x = ffv_max(zero, x); /* max(0, NaN) is NaN */
            if (epi->act == FF_ACT_GELU) x = ffv_gelu(x);
            if (c_bf16) ffv_store_bf16((uint16_t *)ci + FFV_W * v, x);
            else ffv_store(ci + FFV_W * v, x);
        }
    }
}

static inline void store_rows(const float *t, float *c, size_t ldc, size_t rows, const float *bias,
                              const ff_gemm_epi_t *epi) {
    if (epi->c_bf16) store_rows_as(t, c, ldc, rows, bias, epi, 1);
    else store_rows_as(t, c, ldc, rows, bias, epi, 0);
}

/* The same on a full MR x NR tile. */
static void store_tile(const float *t, float *c, size_t ldc, const float *bias, const ff_gemm_epi_t *epi) {
    store_rows(t, c, ldc, MR, bias, epi);
}

/* The first mr rows of the finished (MR, NR) tile t through the epilogue
 * into the (mr, nr) corner of C that exists (rows of t from mr on are never
 * read: a short tile leaves them unset). */
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

#ifdef FFV_BF16_HARDWARE /* for the bf16 kernels (epilogue_avx512bf16.c) */
/* The epilogue alone on the 12x32 tile (kernel_avx512bf16.c). */
void FFV_FN(ff_gemm_store)(const float *t, float *c, size_t ldc, size_t mr, size_t nr, const ff_gemm_epi_t *epi) {
    store_tile_part(t, c, ldc, mr, nr, epi);
}

/* The epilogue on any number of whole NR-wide rows ([rows][NR] at t), for
 * kernels with taller tiles (kernel_amx.c): the same instructions per element. */
void FFV_FN(ff_gemm_store_rows)(const float *t, float *c, size_t ldc, size_t rows, const ff_gemm_epi_t *epi) {
    store_rows(t, c, ldc, rows, epi->bias, epi);
}
#endif
