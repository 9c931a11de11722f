/* The update of adam_simd.h for AVX2. */
#include "optim/optim.h"
#define FFV_BODY "optim/adam_simd.h"
#include "simd/avx2.h"
