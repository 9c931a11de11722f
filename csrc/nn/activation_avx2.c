/* The leaf of activation_simd.h for AVX2. */
#include "nn/activation.h"
#define FFV_BODY "nn/activation_simd.h"
#include "simd/avx2.h"
