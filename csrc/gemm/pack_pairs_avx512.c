/* The bf16 pair packers of pack_pairs_simd.h, for AVX-512 (the AVX512-BF16 kernel's). */
#include "gemm/gemm_internal.h"
#define FFV_BODY "gemm/pack_pairs_simd.h"
#include "simd/avx512.h"
