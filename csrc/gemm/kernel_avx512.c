/* AVX-512 micro-kernel: a 12x32 tile of C in 24 zmm accumulators. Per k step:
 * two 16-wide loads of the B panel, twelve broadcast loads of A, 24 FMAs.
 * Zen 4/5 and Intel cores issue two 512-bit FMAs per cycle with 4-cycle
 * latency, so >= 8 independent chains are needed; 24 leaves room, and 14
 * loads per 24 FMAs stay under the two loads per cycle the L1 serves.
 * 24 + 2 + 1 registers fit in the 32 zmm. Measured: 97% of the FMA peak with
 * the panels in cache (8x32 and 14x32 tiles: no better). */
#include "gemm/gemm_internal.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

#define MR FF_GEMM_AVX512_MR
#define NR FF_GEMM_AVX512_NR
#define NV (NR / 16)

FF_TARGET_AVX512_BEGIN

/* Exact GELU, x * Phi(x) = 0.5 x erfc(-x / sqrt 2), in registers. erfc is
 * the Chebyshev fit of Numerical Recipes (erfcc: t = 1 / (1 + |z| / 2),
 * erfc(|z|) = t exp(-z^2 + P(t)), fractional error < 1.2e-7 for every z) in
 * float32 arithmetic, with a degree-6 exp: about 1e-6 relative to Phi, ~30x
 * faster than calling erfcf per element. NaN stays NaN. */
static inline __m512 exp_neg(__m512 x) { /* e^x for x <= ~0; e^-87 and below flush to ~0 */
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x); /* max(c, NaN) keeps the NaN */
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x); /* ln 2 in two parts */
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline __m512 gelu(__m512 x) {
    const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(-0.70710678118654752f));
    const __m512 az = _mm512_abs_ps(z);
    const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(az, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f)));
    static const float c[10] = {-1.26551223f, 1.00002368f, 0.37409196f, 0.09678418f, -0.18628806f,
                                0.27886807f,  -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};
    __m512 p = _mm512_set1_ps(c[9]);
    for (int i = 8; i >= 0; i--) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c[i]));
    const __m512 e = _mm512_mul_ps(t, exp_neg(_mm512_fnmadd_ps(az, az, p))); /* erfc(|z|) */
    const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 erfc = _mm512_mask_sub_ps(e, neg, _mm512_set1_ps(2.0f), e); /* erfc(-a) = 2 - erfc(a) */
    return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), erfc);
}

/* The epilogue of gemm_internal.h on a full MR x NR tile: c has ldc, bias has NR. */
static void store_tile(const float *t, float *c, size_t ldc, const float *bias, const ff_gemm_epi_t *epi) {
    const __m512 valpha = _mm512_set1_ps(epi->alpha), vbeta = _mm512_set1_ps(epi->beta);
    const __m512 zero = _mm512_setzero_ps();
    const int beta1 = epi->beta == 1.0f;
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        float *ci = c + i * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            __m512 x = _mm512_mul_ps(valpha, _mm512_load_ps(t + i * NR + 16 * v));
            if (epi->load_c) {
                __m512 cv = _mm512_loadu_ps(ci + 16 * v);
                x = _mm512_add_ps(x, beta1 ? cv : _mm512_mul_ps(vbeta, cv));
            }
            if (bias) x = _mm512_add_ps(x, _mm512_loadu_ps(bias + 16 * v));
            if (epi->act == FF_ACT_RELU) x = _mm512_max_ps(zero, x); /* max(0, NaN) is NaN */
            if (epi->act == FF_ACT_GELU) x = gelu(x);
            _mm512_storeu_ps(ci + 16 * v, x);
        }
    }
}

/* One k step: two B vectors, MR broadcasts of A, 2*MR FMAs. */
#define K_STEP()                                                                          \
    do {                                                                                  \
        const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);                \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                           \
            const __m512 ai = _mm512_set1_ps(a[i]);                                       \
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);                               \
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);                               \
        }                                                                                 \
        a += MR;                                                                          \
        b += NR;                                                                          \
    } while (0)

/* k steps left when the C tile is fetched into L1: ~400 cycles, an L3 hit's latency
 * several times over (it was already asked into L2 at the start). */
#define PF_LEAD 32

/* acc = A_panel @ B_panel into t ([MR][NR], 64-byte aligned). A function of its
 * own: inlined beside the epilogue (which calls out), GCC spills accumulators.
 * c (the tile's C, ldc) is only prefetched here: C comes from L3 or memory
 * each KC block, and waiting for it at the store costs ~10% otherwise. */
static __attribute__((noinline)) void tile_product(size_t kc, const float *restrict a, const float *restrict b,
                                                   float *t, const float *c, size_t ldc) {
    __m512 acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T1);
        _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T1); /* 3 lines if C is not 64-byte aligned */
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T1);
    }
    size_t p = 0;
    for (; p + PF_LEAD < kc; p++) K_STEP();
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0); /* 3 lines if C is not 64-byte aligned */
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
    for (; p < kc; p++) K_STEP();

#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        _mm512_store_ps(t + i * NR, acc[i][0]);
        _mm512_store_ps(t + i * NR + 16, acc[i][1]);
    }
}

#include "gemm/kernel_store.h"

/* a is [kc][MR], b is [kc][32] (64-byte aligned); c is (mr, nr) of C. */
void ff_gemm_kernel_avx512(size_t kc, const float *restrict a, const float *restrict b, float *c, size_t ldc,
                           size_t mr, size_t nr, const ff_gemm_epi_t *epi) {
    float t[MR * NR] __attribute__((aligned(64)));
    tile_product(kc, a, b, t, c, ldc);
    store_tile_part(t, c, ldc, mr, nr, epi);
}

void ff_gemm_store_avx512(const float *t, float *c, size_t ldc, size_t mr, size_t nr, const ff_gemm_epi_t *epi) {
    store_tile_part(t, c, ldc, mr, nr, epi);
}

FF_TARGET_END

#endif
