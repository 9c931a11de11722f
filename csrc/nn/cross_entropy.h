/* Cross-entropy over the last axis fused with log-softmax, as
 * torch.nn.functional.cross_entropy (mean over targets != ignore_index,
 * label smoothing eps): per row one pass computes the row's loss and its
 * dlogits = (softmax - (1 - eps) onehot - eps / V) / n_valid (0 on ignored
 * rows). Row losses are summed in row order in double, so the loss is
 * bitwise identical for any thread count. */
#ifndef FF_CROSS_ENTROPY_H
#define FF_CROSS_ENTROPY_H

#include <stddef.h>

#include "runtime/runtime.h"
#include <math.h>
#include <stdint.h>

/* dlogits, logits are (rows, V); targets is (rows,), each in [0, V) or
 * ignore_index. Returns the mean loss: NaN when every target is ignored (as
 * torch), or when out of memory for the per-row losses. */
double ff_cross_entropy(float *dlogits, const float *logits, const int64_t *targets, size_t rows, size_t V,
                        int64_t ignore_index, double label_smoothing);

/* The same on a slice of a batch's rows, for a caller that goes through the
 * batch in row chunks: dlogits = (...) * inv_n (1 / the batch's normalizer),
 * and the rows' losses added to *total in row order (chunks in order give the
 * whole batch's bits). Returns 0, or -1 when out of memory (*total as was). */
int ff_cross_entropy_rows(float *dlogits, const float *logits, const int64_t *targets, size_t rows, size_t V,
                          int64_t ignore_index, double label_smoothing, double inv_n, double *total);

/* One valid row: writes dl (V,) and returns the row's loss
 * (1 - eps) * (lse - x[t]) + eps * (lse - mean(x)). inv_n = 1 / n_valid.
 * dl may be x (in place): every x[j] is read before dl[j] is written. */
typedef double (*ff_ce_row_fn)(float *dl, const float *x, size_t V, size_t t, double eps, double inv_n);
FF_SIMD_LEAVES(double, ff_ce_row, (float *dl, const float *x, size_t V, size_t t, double eps, double inv_n));

/* The part every leaf shares once it has the row's max m, sum of exp(x - m)
 * and sum of x: returns the loss, fixes up dl[t] (dl holds e * c1 - c0).
 * x_t is x[t], read by the leaf before it wrote dl (which may be x). */
static inline double ff_ce_row_finish(float *dl, size_t V, size_t t, double eps, double inv_n, float m,
                                      double sum_e, double sum_x, float e_t, float x_t) {
    double lse = (double)m + log(sum_e);
    dl[t] = (float)(((double)e_t / sum_e - (1.0 - eps) - eps / (double)V) * inv_n);
    return (1.0 - eps) * (lse - (double)x_t) + eps * (lse - sum_x / (double)V);
}

#endif
