/* AVX512-BF16 micro-kernel: the 12x32 tile of kernel_avx512.c with bf16
 * panels (gemm_bf16.c). One step takes a pair of k: two B vectors of 16
 * columns x 2 k each, twelve broadcasts of an A pair, 24 vdpbf16ps (each
 * adds two exact products to an fp32 lane), so a k step costs half of the
 * fp32 kernel's. The epilogue is the fp32 kernel's own (epilogue_simd.h,
 * rounding a bf16 C with vcvtneps2bf16). */
#include "gemm/gemm_internal.h"
#include "runtime/fma_peak.h"
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
    ff_gemm_store_avx512bf16(t, c, ldc, mr, nr, epi);
}

/* The peak leaf (runtime/fma_peak.h): 16 independent vdpbf16ps chains,
 * each instruction 16 lanes x 2 multiply-adds. */
float ff_fma_peak_avx512bf16(size_t iters, double *flops) {
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80); /* (1, 1) */
    const __m512bh y = (__m512bh)_mm512_set1_epi32(0x33803380); /* (6e-8, 6e-8) */
    __m512 a[16];
#pragma GCC unroll 16
    for (int c = 0; c < 16; c++) a[c] = _mm512_set1_ps(1.0f + c * 0.001f);
    for (size_t i = 0; i < iters; i++) {
#pragma GCC unroll 16
        for (int c = 0; c < 16; c++) a[c] = _mm512_dpbf16_ps(a[c], x, y);
    }
    *flops = (double)iters * 16 * 16 * 2 * 2;
    float s[16] __attribute__((aligned(64)));
    _mm512_store_ps(s, a[0]);
    for (int c = 1; c < 16; c++) _mm512_store_ps(s, _mm512_add_ps(_mm512_load_ps(s), a[c]));
    return s[0] + s[15];
}

FF_TARGET_END

#endif
