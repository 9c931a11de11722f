/* Token embedding with the sqrt(d) scale and the positions fused, and its
 * gradient: a scatter-add into the table, deterministic for any thread count
 * (ids are counting-sorted, each thread owns a slice of table rows and sums
 * each row's tokens in token order). */
#ifndef FF_EMBEDDING_H
#define FF_EMBEDDING_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/runtime.h"

/* y is (ntok, d) with ntok = B * T tokens in C order; ids is (ntok,), each in
 * [0, V); weight is (V, d); positions is (>= T, d).
 * y[i] = weight[ids[i]] * scale + positions[i % T]. */
void ff_embedding_forward(float *y, const int64_t *ids, const float *weight, const float *positions, size_t ntok,
                          size_t T, size_t d, float scale);

/* dweight is (V, d), dx is (ntok, d), ids (ntok,) in [0, V):
 * dweight[v] = sum over i with ids[i] == v, in order of i, of dx[i] * scale
 * (rows no token uses are 0). With accumulate != 0 the sum is added into
 * dweight instead (dweight[v] += dx[i] * scale in order of i; unused rows are
 * left alone): a model accumulates straight into its gradient buffer.
 * Returns 0, or -1 when out of memory. */
int ff_embedding_backward(float *dweight, const float *dx, const int64_t *ids, size_t ntok, size_t V, size_t d,
                          float scale, int accumulate);

/* Row leaves: y (d,) = w * scale + p; dw (d,) += g * scale, or dw = 0 + g * scale when first. */
typedef void (*ff_embedding_row_fn)(float *y, const float *w, const float *p, size_t d, float scale);
typedef void (*ff_embedding_acc_fn)(float *dw, const float *g, size_t d, float scale, int first);
FF_SIMD_LEAVES(void, ff_embedding_row, (float *y, const float *w, const float *p, size_t d, float scale));
FF_SIMD_LEAVES(void, ff_embedding_acc, (float *dw, const float *g, size_t d, float scale, int first));

#endif
