/* The leaves of embedding_simd.h for AVX2. */
#include "nn/embedding.h"
#define FFV_BODY "nn/embedding_simd.h"
#include "simd/avx2.h"
