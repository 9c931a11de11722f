/* Portable micro-kernel for CPUs without AVX2: a 6x8 tile in GCC/Clang
 * vector extensions (4-wide: SSE2 on baseline x86-64, NEON on arm64), the
 * shape of the AVX2 kernel at half width: 12 accumulators + 2 B + 1
 * broadcast fit the 16 registers. Plain multiply and add (no FMA on the
 * baseline ISA), so results match the SIMD kernels to float32 rounding. */
#include "gemm/gemm_internal.h"

#define MR FF_GEMM_GENERIC_MR
#define NR FF_GEMM_GENERIC_NR

typedef float v4f __attribute__((vector_size(16), aligned(4)));

/* acc = A_panel @ B_panel into t ([MR][NR]). */
static __attribute__((noinline)) void tile_product(size_t kc, const float *restrict a, const float *restrict b,
                                                   float *restrict t) {
    v4f acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = (v4f){0, 0, 0, 0};
    for (size_t p = 0; p < kc; p++) {
        const v4f b0 = *(const v4f *)b, b1 = *(const v4f *)(b + 4);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            const float ai = a[i];
            const v4f av = {ai, ai, ai, ai};
            acc[i][0] += av * b0;
            acc[i][1] += av * b1;
        }
        a += MR;
        b += NR;
    }
    for (int i = 0; i < MR; i++) {
        *(v4f *)(t + i * NR) = acc[i][0];
        *(v4f *)(t + i * NR + 4) = acc[i][1];
    }
}

/* a is [kc][MR], b is [kc][NR]; c is (mr, nr) of C. */
void ff_gemm_kernel_generic(size_t kc, const float *restrict a, const float *restrict b, float *c, size_t ldc,
                            size_t mr, size_t nr, const ff_gemm_epi_t *epi) {
    float t[MR * NR] __attribute__((aligned(64)));
    tile_product(kc, a, b, t);
    ff_gemm_epilogue_scalar(t, NR, c, ldc, mr, nr, epi);
}
