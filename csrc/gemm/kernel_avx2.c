/* AVX2/FMA micro-kernel: a 6x16 tile of C in 12 ymm accumulators. Per k step:
 * two 8-wide loads of the B panel, six broadcasts of A, twelve FMAs; the
 * 2 FMA pipes x 4-5 cycles latency need >= 10 independent chains, which 12
 * gives, and 12 + 2 + 1 registers fit in the 16 ymm. */
#include "gemm/gemm_internal.h"
#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

#define MR FF_GEMM_AVX2_MR
#define NR FF_GEMM_AVX2_NR
#define NV (NR / 8)

FF_TARGET_AVX2_BEGIN

/* Exact GELU, x * Phi(x) = 0.5 x erfc(-x / sqrt 2), in registers. erfc is
 * the Chebyshev fit of Numerical Recipes (erfcc: t = 1 / (1 + |z| / 2),
 * erfc(|z|) = t exp(-z^2 + P(t)), fractional error < 1.2e-7 for every z) in
 * float32 arithmetic, with a degree-6 exp: about 1e-6 relative to Phi, ~30x
 * faster than calling erfcf per element. NaN stays NaN. */
static inline __m256 exp_neg(__m256 x) { /* e^x for x <= ~0; e^-87 and below flush to ~0 */
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x); /* max(c, NaN) keeps the NaN */
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x); /* ln 2 in two parts */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n by building the exponent; n >= -126 after the clamp (NaN gives garbage
     * here, but p is NaN already) */
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 gelu(__m256 x) {
    const __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(-0.70710678118654752f));
    const __m256 az = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z);
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(az, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f)));
    static const float c[10] = {-1.26551223f, 1.00002368f, 0.37409196f, 0.09678418f, -0.18628806f,
                                0.27886807f,  -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};
    __m256 p = _mm256_set1_ps(c[9]);
    for (int i = 8; i >= 0; i--) p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(c[i]));
    const __m256 e = _mm256_mul_ps(t, exp_neg(_mm256_fnmadd_ps(az, az, p))); /* erfc(|z|) */
    const __m256 neg = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 erfc = _mm256_blendv_ps(e, _mm256_sub_ps(_mm256_set1_ps(2.0f), e), neg); /* erfc(-a) = 2 - erfc(a) */
    return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), erfc);
}

/* The epilogue of gemm_internal.h on a full MR x NR tile: c has ldc, bias has NR. */
static void store_tile(const float *t, float *c, size_t ldc, const float *bias, const ff_gemm_epi_t *epi) {
    const __m256 valpha = _mm256_set1_ps(epi->alpha), vbeta = _mm256_set1_ps(epi->beta);
    const __m256 zero = _mm256_setzero_ps();
    const int beta1 = epi->beta == 1.0f;
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        float *ci = c + i * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            __m256 x = _mm256_mul_ps(valpha, _mm256_load_ps(t + i * NR + 8 * v));
            if (epi->load_c) {
                __m256 cv = _mm256_loadu_ps(ci + 8 * v);
                x = _mm256_add_ps(x, beta1 ? cv : _mm256_mul_ps(vbeta, cv));
            }
            if (bias) x = _mm256_add_ps(x, _mm256_loadu_ps(bias + 8 * v));
            if (epi->act == FF_ACT_RELU) x = _mm256_max_ps(zero, x); /* max(0, NaN) is NaN */
            if (epi->act == FF_ACT_GELU) x = gelu(x);
            _mm256_storeu_ps(ci + 8 * v, x);
        }
    }
}

/* One k step: two B vectors, MR broadcasts of A, 2*MR FMAs. */
#define K_STEP()                                                           \
    do {                                                                   \
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);   \
        _Pragma("GCC unroll 8") for (int i = 0; i < MR; i++) {             \
            const __m256 ai = _mm256_broadcast_ss(a + i);                  \
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);                \
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);                \
        }                                                                  \
        a += MR;                                                           \
        b += NR;                                                           \
    } while (0)

/* k steps left when the C tile is fetched into L1 (it was asked into L2 at the start). */
#define PF_LEAD 48

/* acc = A_panel @ B_panel into t ([MR][NR], 64-byte aligned). A function of its
 * own: inlined beside the epilogue (which calls out), GCC spills accumulators.
 * c (the tile's C, ldc) is only prefetched here: C comes from L3 or memory
 * each KC block, and waiting for it at the store costs ~10% otherwise. */
static __attribute__((noinline)) void tile_product(size_t kc, const float *restrict a, const float *restrict b,
                                                   float *t, const float *c, size_t ldc) {
    __m256 acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T1);
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T1);
    }
    size_t p = 0;
    for (; p + PF_LEAD < kc; p++) K_STEP();
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
    for (; p < kc; p++) K_STEP();

#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        _mm256_store_ps(t + i * NR, acc[i][0]);
        _mm256_store_ps(t + i * NR + 8, acc[i][1]);
    }
}

#include "gemm/kernel_store.h"

/* a is [kc][6], b is [kc][16] (64-byte aligned); c is (mr, nr) of C. */
void ff_gemm_kernel_avx2(size_t kc, const float *restrict a, const float *restrict b, float *c, size_t ldc,
                         size_t mr, size_t nr, const ff_gemm_epi_t *epi) {
    float t[MR * NR] __attribute__((aligned(64)));
    tile_product(kc, a, b, t, c, ldc);
    store_tile_part(t, c, ldc, mr, nr, epi);
}

FF_TARGET_END

#endif
