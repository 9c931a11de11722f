/* The leaves of embedding_simd.h for AVX-512. */
#include "nn/embedding.h"
#define FFV_BODY "nn/embedding_simd.h"
#include "simd/avx512.h"
