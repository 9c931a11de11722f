/* The leaves of attn_leaf_simd.h for AVX2. */
#include "attention/attn_internal.h"
#include "gemm/gemm_internal.h"
#define FFV_BODY "attention/attn_leaf_simd.h"
#include "simd/avx2.h"
