/* LayerNorm over the last axis with the residual add fused: y = LN(x + r),
 * biased variance, saving mean and rstd = 1/sqrt(var + eps) for backward.
 *
 * Forward rows are independent (one owner thread each). Backward's dweight
 * and dbias sum over rows: rows are cut into FF_LN_ROW_CHUNK-row chunks whose
 * partial sums are combined in chunk order, so every thread count gives the
 * same bits. */
#ifndef FF_LAYERNORM_H
#define FF_LAYERNORM_H

#include <stddef.h>

#include "runtime/runtime.h"

#define FF_LN_ROW_CHUNK 32

/* y, x, r are (rows, d), r may be NULL (no residual); weight, bias are (d,);
 * mean, rstd are (rows,). */
void ff_layer_norm_forward(float *y, float *mean, float *rstd, const float *x, const float *r, const float *weight,
               const float *bias, size_t rows, size_t d, float eps);

/* dx, dy, x, r are (rows, d) (r may be NULL); dweight, dbias, weight are (d,);
 * mean, rstd are (rows,). dx is also the residual's gradient. accumulate:
 * dweight and dbias get the sums added (a model's gradient buffer), else
 * hold them. Returns 0, or -1 when out of memory for the partial sums
 * (outputs then undefined). */
int ff_layer_norm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x, const float *r,
                           const float *weight, const float *mean, const float *rstd, size_t rows, size_t d,
                           int accumulate);

/* Per-row leaves. The backward leaf adds dy * xhat into dw_acc and dy into db_acc. */
typedef void (*ff_ln_fwd_row_fn)(float *y, float *mean, float *rstd, const float *x, const float *r,
                                 const float *w, const float *b, size_t d, float eps);
typedef void (*ff_ln_bwd_row_fn)(float *dx, float *dw_acc, float *db_acc, const float *dy, const float *x,
                                 const float *r, const float *w, float mean, float rstd, size_t d);
FF_SIMD_LEAVES(void, ff_ln_fwd_row, (float *y, float *mean, float *rstd, const float *x, const float *r, const float *w,
               const float *b, size_t d, float eps));
FF_SIMD_LEAVES(void, ff_ln_bwd_row, (float *dx, float *dw_acc, float *db_acc, const float *dy, const float *x, const float *r,
               const float *w, float mean, float rstd, size_t d));

#endif
