/* AVX512-BF16 micro-kernel: the 12x32 tile of kernel_avx512.c with bf16
 * panels (gemm_bf16.c). One step takes a pair of k: two B vectors of 16
 * columns x 2 k each, twelve broadcasts of an A pair, 24 vdpbf16ps (each
 * adds two exact products to an fp32 lane), so a k step costs half of the
 * fp32 kernel's. The epilogue is the fp32 kernel's own. */
#include "gemm/gemm_internal.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

#define MR FF_GEMM_AVX512_MR
#define NR FF_GEMM_AVX512_NR

FF_TARGET_AVX512BF16_BEGIN

static __attribute__((noinline)) void tile_product(size_t ks, const float *restrict a, const float *restrict b,
                                                   float *t) {
    __m512 acc[MR][2];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (size_t s = 0; s < ks; s++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            const __m512bh ai = (__m512bh)_mm512_set1_ps(a[i]); /* one slot: an A pair */
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
        a += MR;
        b += NR;
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        _mm512_store_ps(t + i * NR, acc[i][0]);
        _mm512_store_ps(t + i * NR + 16, acc[i][1]);
    }
}

/* a is [ceil(kc/2)][MR] pair slots, b [ceil(kc/2)][32] (64-byte aligned). */
void ff_gemm_kernel_avx512bf16(size_t kc, const float *restrict a, const float *restrict b, float *c, size_t ldc,
                               size_t mr, size_t nr, const ff_gemm_epi_t *epi) {
    float t[MR * NR] __attribute__((aligned(64)));
    tile_product((kc + 1) / 2, a, b, t);
    ff_gemm_store_avx512(t, c, ldc, mr, nr, epi);
}

FF_TARGET_END

#endif
