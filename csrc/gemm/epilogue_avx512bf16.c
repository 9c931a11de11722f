/* The GEMM epilogue of epilogue_simd.h for the bf16 kernels (AMX and
 * AVX512-BF16, kernel_amx.c and kernel_avx512bf16.c): AVX-512 with a bf16 C
 * rounded by vcvtneps2bf16, which every CPU with those kernels has. */
#include "gemm/gemm_internal.h"
#define FFV_BF16_HARDWARE
#define FFV_BODY "gemm/epilogue_simd.h"
#include "simd/avx512.h"
