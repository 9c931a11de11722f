/* Dot product of two float vectors: the first kernel behind run-time SIMD
 * dispatch, and the pattern for deterministic reductions.
 *
 * The vectors are cut into FF_DOT_CHUNK-element chunks; each chunk is summed
 * by one thread with one fixed instruction sequence, and the chunk sums are
 * added in chunk order in double. So the result is bitwise identical for any
 * thread count (it does depend on the SIMD level, within float rounding). */
#ifndef FF_DOT_H
#define FF_DOT_H

#include <stddef.h>

#define FF_DOT_CHUNK 4096

/* x, y are (n,) */
float ff_dot(size_t n, const float *x, const float *y);

/* One chunk, per instruction set (n <= FF_DOT_CHUNK). */
float ff_dot_chunk_generic(size_t n, const float *x, const float *y);
float ff_dot_chunk_avx2(size_t n, const float *x, const float *y);

#endif
