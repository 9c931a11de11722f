/* The leaves of softmax_simd.h for AVX2. */
#include "nn/softmax.h"
#define FFV_BODY "nn/softmax_simd.h"
#include "simd/avx2.h"
