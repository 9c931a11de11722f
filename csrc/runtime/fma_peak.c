/* Measured FMA peak: the driver (threads, timing) and the portable leaf. */
#include <string.h>
#include <time.h>

#include "gemm/gemm.h"
#include "runtime/fma_peak.h"
#include "runtime/simd_target.h"
#include "runtime/runtime.h"

/* Portable leaf: 32 independent multiply-add chains (plain C; the build has
 * no FMA contraction, so this is the generic kernels' real arithmetic rate). */
float ff_fma_peak_generic(size_t iters, double *flops) {
    float a[32];
    for (int l = 0; l < 32; l++) a[l] = 1.0f + l * 0.001f; /* distinct: not merged */
    const float x = 0.999999f, y = 1e-6f;
    for (size_t i = 0; i < iters; i++)
        for (int l = 0; l < 32; l++) a[l] = a[l] * x + y;
    *flops = (double)iters * 32 * 2;
    float s = 0.0f;
    for (int l = 0; l < 32; l++) s += a[l];
    return s;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

typedef float (*leaf_fn)(size_t, double *);

volatile float ff_fma_peak_sink; /* keeps the leaves' results alive */

/* The leaf of the bf16 products' path (gemm_bf16.c), NULL when emulated. */
static leaf_fn bf16_leaf(void) {
    const char *path = ff_bf16_path();
#if FF_HAVE_AMX
    if (strcmp(path, "amx") == 0) return ff_fma_peak_amx;
#endif
#if FF_X86
    if (strcmp(path, "avx512_bf16") == 0) return ff_fma_peak_avx512bf16;
#endif
    (void)path;
    return NULL;
}

double ff_fma_peak(int simd, int want_bf16, double seconds, int threads) {
    ff_simd_t level = (ff_simd_t)simd;
    if (level > ff_simd_detected()) level = ff_simd_detected();
#if FF_X86
    leaf_fn leaf = level >= FF_SIMD_AVX512 ? ff_fma_peak_avx512
                   : level >= FF_SIMD_AVX2 ? ff_fma_peak_avx2
                                           : ff_fma_peak_generic;
#else
    leaf_fn leaf = ff_fma_peak_generic;
#endif
    const leaf_fn bf16 = want_bf16 ? bf16_leaf() : NULL;
    if (bf16) leaf = bf16;
    if (threads < 1) threads = 1;
    if (seconds <= 0) seconds = 0.1;

    /* Calibrate one chunk to ~1 ms on this thread (also warms the clock up). */
    double f;
    size_t iters = 1024;
    for (;;) {
        double t0 = now();
        ff_fma_peak_sink = leaf(iters, &f);
        if (now() - t0 > 1e-3 || iters > ((size_t)1 << 40)) break;
        iters *= 2;
    }
    double t0 = now();
    ff_fma_peak_sink = leaf(iters, &f);
    double chunk = now() - t0;
    size_t chunks = (size_t)(seconds / (chunk > 1e-9 ? chunk : 1e-9)) + 1;

    double total = 0.0, start = 0.0, stop = 0.0;
    FF_OMP(parallel num_threads(threads) reduction(+ : total))
    {
#if FF_HAVE_OPENMP
#pragma omp barrier
#pragma omp master
#endif
        start = now();
        double fl = 0.0;
        for (size_t c = 0; c < chunks; c++) {
            ff_fma_peak_sink = leaf(iters, &fl);
            total += fl;
        }
#if FF_HAVE_OPENMP
#pragma omp barrier
#pragma omp master
#endif
        stop = now();
    }
    return total / (stop - start) * 1e-9;
}
