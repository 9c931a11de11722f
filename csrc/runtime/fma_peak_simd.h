/* The FMA throughput leaf, written once for every instruction set: compiled
 * by fma_peak_avx2.c and fma_peak_avx512.c (see simd/avx2.h). CHAINS
 * independent chains (2 pipes x 4-5 cycles latency need >= 10; AVX-512's
 * 32 registers hold 16 for margin), unrolled in full so the loop body is
 * CHAINS FMAs whatever the compiler's heuristics. */
#if FFV_W == 8
#define CHAINS 12
#else
#define CHAINS 16
#endif

float FFV_FN(ff_fma_peak)(size_t iters, double *flops) {
    const ffv x = ffv_set1(0.999999f), y = ffv_set1(1e-6f);
    ffv a[CHAINS];
#pragma GCC unroll 16
    for (int c = 0; c < CHAINS; c++) a[c] = ffv_set1(1.0f + c * 0.001f); /* identical chains would be merged */
    for (size_t i = 0; i < iters; i++) {
#pragma GCC unroll 16
        for (int c = 0; c < CHAINS; c++) a[c] = ffv_fmadd(a[c], x, y);
    }
    *flops = (double)iters * CHAINS * FFV_W * 2;
    ffv s = ffv_zero();
#pragma GCC unroll 16
    for (int c = 0; c < CHAINS; c++) s = ffv_add(s, a[c]);
    return ffv_hsum(s);
}
