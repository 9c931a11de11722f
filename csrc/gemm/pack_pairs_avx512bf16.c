/* The bf16 pair packers of pack_pairs_simd.h, for the AVX512-BF16 and AMX
 * kernels: AVX-512 rounding floats with vcvtneps2bf16, which every CPU with
 * those kernels has. */
#include "gemm/gemm_internal.h"
#define FFV_BF16_HARDWARE
#define FFV_BODY "gemm/pack_pairs_simd.h"
#include "simd/avx512.h"
