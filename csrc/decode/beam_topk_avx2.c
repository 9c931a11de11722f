/* The leaves of beam_topk_simd.h for AVX2. */
#include "decode/beam_topk.h"
#define FFV_BODY "decode/beam_topk_simd.h"
#include "simd/avx2.h"
