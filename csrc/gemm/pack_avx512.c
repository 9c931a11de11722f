/* The packers of pack_simd.h for AVX-512. */
#include "gemm/gemm_internal.h"
#define FFV_BODY "gemm/pack_simd.h"
#include "simd/avx512.h"
