/* The leaves of cross_entropy_simd.h for AVX2. */
#include "nn/cross_entropy.h"
#define FFV_BODY "nn/cross_entropy_simd.h"
#include "simd/avx2.h"
