/* Softmax over the last axis with an optional mask, forward and backward.
 * A row whose entries are all masked gives 0 (forward) and 0 (backward),
 * never NaN. Rows are independent and each is computed by one thread, so the
 * result is bitwise identical for any thread count.
 *
 * x viewed as (rows, n) with rows = prod(lead_shape). The mask, if any, has
 * n contiguous entries per row (its last axis is not broadcast) and its row
 * for the row with leading index (i_0, ..., i_{nlead-1}) starts at element
 * sum_k i_k * mask_strides[k] (a stride of 0 broadcasts that axis). */
#ifndef FF_SOFTMAX_H
#define FF_SOFTMAX_H

#include <stddef.h>

#include "runtime/runtime.h"
#include <stdint.h>

enum { FF_MASK_NONE = 0, FF_MASK_BOOL = 1, FF_MASK_ADD = 2 };

/* y, x are (rows, n); mask is uint8 (1 = masked out) for FF_MASK_BOOL or float
 * (added to x; -inf masks out) for FF_MASK_ADD; lead_shape, mask_strides are (nlead,). */
void ff_softmax_forward(float *y, const float *x, const void *mask, int mask_kind, size_t rows, size_t n,
                        int nlead, const int64_t *lead_shape, const int64_t *mask_strides);

/* dx, dy, y are (rows, n): dx = y * (dy - sum(dy * y)). dx may alias dy. */
void ff_softmax_backward(float *dx, const float *dy, const float *y, size_t rows, size_t n);

/* Per-row leaves, one per instruction set. */
typedef void (*ff_softmax_fwd_row_fn)(float *y, const float *x, const uint8_t *bmask, const float *amask, size_t n);
typedef void (*ff_softmax_bwd_row_fn)(float *dx, const float *dy, const float *y, size_t n);
FF_SIMD_LEAVES(void, ff_softmax_fwd_row, (float *y, const float *x, const uint8_t *bmask, const float *amask, size_t n));
FF_SIMD_LEAVES(void, ff_softmax_bwd_row, (float *dx, const float *dy, const float *y, size_t n));

#endif
