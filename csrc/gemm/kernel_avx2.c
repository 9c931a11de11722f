/* The micro-kernel of kernel_simd.h for AVX2. */
#include "gemm/gemm_internal.h"
#define FFV_BODY "gemm/kernel_simd.h"
#include "simd/avx2.h"
