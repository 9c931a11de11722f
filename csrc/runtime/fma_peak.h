/* Measured floating-point peak: how many float32 FLOP/s this machine's FMA
 * units deliver per instruction set, so benchmarks report a fraction of what
 * the hardware really does rather than of a datasheet number. */
#ifndef FF_FMA_PEAK_H
#define FF_FMA_PEAK_H

#include <stddef.h>

/* GFLOP/s (an FMA is 2 FLOPs) of `threads` threads running back-to-back
 * independent FMAs for about `seconds`, with the kernel of `simd` (an
 * ff_simd_t, capped at what the CPU supports). bf16 != 0: the multiply-adds
 * of the path bf16 products take now (ff_bf16_path: AMX's tdpbf16ps,
 * AVX512-BF16's vdpbf16ps; emulated: the fp32 FMAs of `simd`). */
double ff_fma_peak(int simd, int bf16, double seconds, int threads);

/* Leaf kernels: `iters` rounds of independent FMAs; return a value that
 * depends on all of them (so nothing is optimised away); *flops gets the count. */
float ff_fma_peak_generic(size_t iters, double *flops);
float ff_fma_peak_avx2(size_t iters, double *flops);
float ff_fma_peak_avx512(size_t iters, double *flops);
float ff_fma_peak_avx512bf16(size_t iters, double *flops); /* kernel_avx512bf16.c */
float ff_fma_peak_amx(size_t iters, double *flops);        /* kernel_amx.c */

#endif
