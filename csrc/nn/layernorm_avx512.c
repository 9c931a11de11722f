/* The leaves of layernorm_simd.h for AVX-512. */
#include "nn/layernorm.h"
#define FFV_BODY "nn/layernorm_simd.h"
#include "simd/avx512.h"
