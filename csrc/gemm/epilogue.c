/* Scalar epilogue of the portable kernel (the SIMD kernels run the same steps
 * in registers, GELU included). */
#include <math.h>

#include "gemm/gemm_internal.h"

/* 0.5 x (1 + erf(x / sqrt 2)) written as 0.5 x erfc(-x / sqrt 2): the same
 * value, without 1 + erf cancelling to 0 for negative x. */
void ff_gemm_gelu_inplace(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * erfcf(v * -0.70710678118654752f);
    }
}

/* acc is (mr, nr) with leading dimension ldt; c is (mr, nr) with ldc
 * (a bf16 C: nr <= FF_GEMM_EPI_BF16_MAX). */
void ff_gemm_epilogue_scalar(const float *acc, size_t ldt, float *c, size_t ldc, size_t mr, size_t nr,
                             const ff_gemm_epi_t *epi) {
    const float alpha = epi->alpha, beta = epi->beta;
    float row[FF_GEMM_EPI_BF16_MAX]; /* a bf16 C's row before rounding */
    for (size_t i = 0; i < mr; i++) {
        uint16_t *c16 = (uint16_t *)ff_gemm_c_row(c, ldc, i, epi);
        float *ci = epi->c_bf16 ? row : c + i * ldc;
        const float *ai = acc + i * ldt;
        for (size_t j = 0; j < nr; j++) {
            float v = alpha * ai[j];
            if (epi->load_c) {
                const float cj = epi->c_bf16 ? ff_bf16_value(c16[j]) : ci[j];
                v = v + (beta == 1.0f ? cj : beta * cj);
            }
            if (epi->bias) v = v + epi->bias[j];
            if (epi->act == FF_ACT_RELU) v = v < 0.0f ? 0.0f : v; /* NaN stays NaN */
            ci[j] = v;
        }
        if (epi->act == FF_ACT_GELU) ff_gemm_gelu_inplace(ci, nr);
        for (size_t j = 0; epi->c_bf16 && j < nr; j++) c16[j] = ff_bf16_bits(row[j]);
    }
}
