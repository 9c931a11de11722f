/* The FMA leaf of fma_peak_simd.h for AVX2. */
#include "runtime/fma_peak.h"
#define FFV_BODY "runtime/fma_peak_simd.h"
#include "simd/avx2.h"
