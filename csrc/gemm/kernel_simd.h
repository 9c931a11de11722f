/* The fp32 GEMM micro-kernel, written once for every instruction set:
 * compiled by kernel_avx2.c and kernel_avx512.c (see simd/avx2.h).
 *
 * An MR x NR tile of C in MR x 2 accumulators; per k step two vector loads
 * of the B panel, MR broadcasts of A, 2 MR FMAs. Two FMA pipes of 4-5 cycles
 * latency need >= 10 independent chains.
 * - AVX2: 6x16 in 12 ymm (+ 2 + 1 registers of the 16).
 * - AVX-512: 12x32 in 24 zmm (+ 2 + 1 of the 32); 14 loads per 24 FMAs stay
 *   under the two loads per cycle the L1 serves. Measured: 97% of the FMA
 *   peak with the panels in cache (8x32 and 14x32 tiles: no better).
 * PF_LEAD: k steps left when the C tile is fetched into L1 (it was asked
 * into L2 at the start): several L3 latencies' worth of FMAs. */
#include "gemm/epilogue_simd.h" /* MR, NR, NV and store_tile_part */
#if FFV_W == 8
#define PF_LEAD 48
#else
#define PF_LEAD 32
#endif
_Static_assert(MR % 3 == 0, "short tiles of a third and two thirds of MR rows");

#define K_STEP(rows)                                               \
    do {                                                           \
        const ffv b0 = ffv_load(b), b1 = ffv_load(b + FFV_W);      \
        _Pragma("GCC unroll 16") for (int i = 0; i < rows; i++) {  \
            const ffv ai = ffv_set1(a[i]);                         \
            acc[i][0] = ffv_fmadd(ai, b0, acc[i][0]);              \
            acc[i][1] = ffv_fmadd(ai, b1, acc[i][1]);              \
        }                                                          \
        a += MR;                                                   \
        b += NR;                                                   \
    } while (0)

/* The lines of the first `rows` rows of the C tile (three when a 128-byte row
 * is not 64-byte aligned), into cache level `locality` (2: L2, 3: L1). */
#define PREFETCH_C(rows, locality)                                                           \
    _Pragma("GCC unroll 16") for (int i = 0; i < rows; i++) {                                \
        __builtin_prefetch(c + i * ldc, 0, locality);                                        \
        if (NR > 16) __builtin_prefetch(c + i * ldc + 16, 0, locality);                      \
        __builtin_prefetch(c + i * ldc + NR - 1, 0, locality);                               \
    }

/* The first `rows` rows of acc = A_panel @ B_panel into t ([MR][NR], 64-byte
 * aligned; rows >= `rows` untouched). c (the tile's C, ldc) is only
 * prefetched here: C comes from L3 or memory each KC block, and waiting for
 * it at the store costs ~10% otherwise. Each element is the same chain of
 * FMAs whatever `rows` is, so a short tile gives the full tile's bits. */
static inline __attribute__((always_inline)) void tile_rows(size_t kc, const float *restrict a,
                                                            const float *restrict b, float *t, const float *c,
                                                            size_t ldc, const int rows) {
    ffv acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) acc[i][0] = acc[i][1] = ffv_zero();
    PREFETCH_C(rows, 2)
    size_t p = 0;
    for (; p + PF_LEAD < kc; p++) K_STEP(rows);
    PREFETCH_C(rows, 3)
    for (; p < kc; p++) K_STEP(rows);
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) {
        ffv_store(t + i * NR, acc[i][0]);
        ffv_store(t + i * NR + FFV_W, acc[i][1]);
    }
}

/* The full tile and two short ones, for a last row panel of a third or two
 * thirds of MR rows (decoding's 16-row products: 12 + 4 rows of FMAs, not
 * 12 + 12). Functions of their own: inlined beside the epilogue (which calls
 * out), GCC spills accumulators. */
static __attribute__((noinline)) void tile_product(size_t kc, const float *restrict a, const float *restrict b,
                                                   float *t, const float *c, size_t ldc) {
    tile_rows(kc, a, b, t, c, ldc, MR);
}
static __attribute__((noinline)) void tile_product_third(size_t kc, const float *restrict a,
                                                         const float *restrict b, float *t, const float *c,
                                                         size_t ldc) {
    tile_rows(kc, a, b, t, c, ldc, MR / 3);
}
static __attribute__((noinline)) void tile_product_two_thirds(size_t kc, const float *restrict a,
                                                              const float *restrict b, float *t, const float *c,
                                                              size_t ldc) {
    tile_rows(kc, a, b, t, c, ldc, 2 * MR / 3);
}

/* a is [kc][MR], b is [kc][NR] (64-byte aligned); c is (mr, nr) of C. */
void FFV_FN(ff_gemm_kernel)(size_t kc, const float *restrict a, const float *restrict b, float *c, size_t ldc,
                            size_t mr, size_t nr, const ff_gemm_epi_t *epi) {
    float t[MR * NR] __attribute__((aligned(64)));
    const size_t ldp = ff_gemm_c_prefetch_ld(ldc, epi);
    if (mr <= MR / 3)
        tile_product_third(kc, a, b, t, c, ldp);
    else if (mr <= 2 * MR / 3)
        tile_product_two_thirds(kc, a, b, t, c, ldp);
    else
        tile_product(kc, a, b, t, c, ldp);
    store_tile_part(t, c, ldc, mr, nr, epi);
}
