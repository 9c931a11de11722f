#include "vector/dot.h"

#include <stdlib.h>

#include "runtime/runtime.h"

/* 8 independent accumulators in the same lane order as the AVX2 kernel, so
 * the two paths differ only in FMA rounding. */
float ff_dot_chunk_generic(size_t n, const float *x, const float *y) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += x[i + l] * y[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += x[i] * y[i];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

typedef float (*dot_chunk_fn)(size_t, const float *, const float *);

static dot_chunk_fn pick_chunk_kernel(void) {
    return ff_simd_active() >= FF_SIMD_AVX2 ? ff_dot_chunk_avx2 : ff_dot_chunk_generic;
}

float ff_dot(size_t n, const float *x, const float *y) {
    if (n == 0) return 0.0f;
    dot_chunk_fn chunk = pick_chunk_kernel();
    size_t nchunks = (n + FF_DOT_CHUNK - 1) / FF_DOT_CHUNK;
    double stack_partial[64];
    double *partial = nchunks <= 64 ? stack_partial : malloc(nchunks * sizeof(double));
    if (partial == NULL) return 0.0f / 0.0f; /* out of memory: NaN, never a wrong finite value */

    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(nchunks, 4)))
    for (size_t c = 0; c < nchunks; c++) {
        size_t start = c * FF_DOT_CHUNK;
        size_t len = n - start < FF_DOT_CHUNK ? n - start : FF_DOT_CHUNK;
        partial[c] = chunk(len, x + start, y + start);
    }

    double total = 0.0;
    for (size_t c = 0; c < nchunks; c++) total += partial[c];
    if (partial != stack_partial) free(partial);
    return (float)total;
}
