#include <math.h>
#include <string.h>

#include "nn/cross_entropy.h"
#include "runtime/scratch.h"
#include "runtime/runtime.h"

#define CE_GRAIN 32768 /* logits worth a thread */

/* Portable leaf: libm expf, sums in double. */
double ff_ce_row_generic(float *dl, const float *x, size_t V, size_t t, double eps, double inv_n) {
    const float x_t = x[t];
    float m = x[0];
    for (size_t j = 1; j < V; j++)
        if (x[j] > m) m = x[j];
    double se = 0.0, sx = 0.0;
    for (size_t j = 0; j < V; j++) {
        const float xj = x[j];
        const float e = expf(xj - m);
        dl[j] = e;
        se += e;
        sx += xj;
    }
    float e_t = dl[t];
    float c1 = (float)(inv_n / se), c0 = (float)(eps / (double)V * inv_n);
    for (size_t j = 0; j < V; j++) dl[j] = dl[j] * c1 - c0;
    return ff_ce_row_finish(dl, V, t, eps, inv_n, m, se, sx, e_t, x_t);
}

int ff_cross_entropy_rows(float *dlogits, const float *logits, const int64_t *targets, size_t rows, size_t V,
                          int64_t ignore_index, double label_smoothing, double inv_n, double *total) {
    if (rows == 0) return 0;
    double *row_loss = ff_scratch(0, rows * sizeof(double));
    if (row_loss == NULL) return -1;
    ff_ce_row_fn leaf = FF_SIMD_PICK(ff_ce_row);
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(rows * V, CE_GRAIN)))
    for (size_t i = 0; i < rows; i++) {
        if (targets[i] == ignore_index) {
            memset(dlogits + i * V, 0, V * sizeof(float));
            row_loss[i] = 0.0;
        } else {
            row_loss[i] = leaf(dlogits + i * V, logits + i * V, V, (size_t)targets[i], label_smoothing, inv_n);
        }
    }
    double sum = *total;
    for (size_t i = 0; i < rows; i++) sum += row_loss[i];
    *total = sum;
    return 0;
}

double ff_cross_entropy(float *dlogits, const float *logits, const int64_t *targets, size_t rows, size_t V,
                        int64_t ignore_index, double label_smoothing) {
    size_t n_valid = 0;
    for (size_t i = 0; i < rows; i++) n_valid += targets[i] != ignore_index;
    if (n_valid == 0) { /* torch: 0 / 0 */
        memset(dlogits, 0, rows * V * sizeof(float));
        return NAN;
    }
    const double inv_n = 1.0 / (double)n_valid;
    double total = 0.0;
    if (ff_cross_entropy_rows(dlogits, logits, targets, rows, V, ignore_index, label_smoothing, inv_n, &total))
        return NAN;
    return total * inv_n;
}
