/* The leaves of softmax_simd.h for AVX-512. */
#include "nn/softmax.h"
#define FFV_BODY "nn/softmax_simd.h"
#include "simd/avx512.h"
