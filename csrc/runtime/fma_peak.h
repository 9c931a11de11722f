/* Measured floating-point peak: how many float32 FLOP/s this machine's FMA
 * units deliver per instruction set, so benchmarks report a fraction of what
 * the hardware really does rather than of a datasheet number. */
#ifndef FF_FMA_PEAK_H
#define FF_FMA_PEAK_H

#include <stddef.h>

/* GFLOP/s (an FMA is 2 FLOPs) of `threads` threads running back-to-back
 * independent FMAs for about `seconds`, with the kernel of `simd` (an
 * ff_simd_t, capped at what the CPU supports). */
double ff_fma_peak(int simd, double seconds, int threads);

/* Leaf kernels: `iters` rounds of independent FMAs; return a value that
 * depends on all of them (so nothing is optimised away); *flops gets the count. */
float ff_fma_peak_generic(size_t iters, double *flops);
float ff_fma_peak_avx2(size_t iters, double *flops);
float ff_fma_peak_avx512(size_t iters, double *flops);

#endif
