#include "nn/layernorm.h"

#include <math.h>
#include <string.h>

#include "runtime/scratch.h"
#include "runtime/runtime.h"

#define LN_GRAIN 16384 /* elements worth a thread */

/* Portable leaves: sums in double. */
void ff_ln_fwd_row_generic(float *y, float *mean, float *rstd, const float *x, const float *r, const float *w,
                           const float *b, size_t d, float eps) {
    const float *z = x;
    if (r) { /* z = x + r, kept in y until the last pass */
        for (size_t j = 0; j < d; j++) y[j] = x[j] + r[j];
        z = y;
    }
    double s = 0.0;
    for (size_t j = 0; j < d; j++) s += z[j];
    float m = (float)(s / (double)d);
    double v = 0.0;
    for (size_t j = 0; j < d; j++) v += (double)(z[j] - m) * (z[j] - m);
    float rs = 1.0f / sqrtf((float)(v / (double)d) + eps);
    for (size_t j = 0; j < d; j++) y[j] = (z[j] - m) * rs * w[j] + b[j];
    *mean = m;
    *rstd = rs;
}

void ff_ln_bwd_row_generic(float *dx, float *dw_acc, float *db_acc, const float *dy, const float *x, const float *r,
                           const float *w, float mean, float rstd, size_t d) {
    double sg = 0.0, sgx = 0.0;
    for (size_t j = 0; j < d; j++) {
        float xhat = ((r ? x[j] + r[j] : x[j]) - mean) * rstd;
        float g = dy[j] * w[j];
        sg += g;
        sgx += (double)g * xhat;
        dw_acc[j] += dy[j] * xhat;
        db_acc[j] += dy[j];
    }
    float mg = (float)(sg / (double)d), mgx = (float)(sgx / (double)d);
    for (size_t j = 0; j < d; j++) {
        float xhat = ((r ? x[j] + r[j] : x[j]) - mean) * rstd;
        dx[j] = rstd * (dy[j] * w[j] - mg - xhat * mgx);
    }
}

void ff_layer_norm_forward(float *y, float *mean, float *rstd, const float *x, const float *r, const float *weight,
                           const float *bias, size_t rows, size_t d, float eps) {
    if (rows == 0 || d == 0) return;
    ff_ln_fwd_row_fn leaf = FF_SIMD_PICK(ff_ln_fwd_row);
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(rows * d, LN_GRAIN)))
    for (size_t i = 0; i < rows; i++)
        leaf(y + i * d, mean + i, rstd + i, x + i * d, r ? r + i * d : NULL, weight, bias, d, eps);
}

int ff_layer_norm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x, const float *r,
                           const float *weight, const float *mean, const float *rstd, size_t rows, size_t d,
                           int accumulate) {
    if (d == 0) return 0;
    if (rows == 0) {
        if (!accumulate) {
            memset(dweight, 0, d * sizeof(float));
            memset(dbias, 0, d * sizeof(float));
        }
        return 0;
    }
    ff_ln_bwd_row_fn leaf = FF_SIMD_PICK(ff_ln_bwd_row);
    size_t nchunks = (rows + FF_LN_ROW_CHUNK - 1) / FF_LN_ROW_CHUNK;
    /* partial[c] = (dweight partial (d,), dbias partial (d,)) of chunk c */
    float *partial = ff_scratch(0, nchunks * 2 * d * sizeof(float));
    if (partial == NULL) return -1;
    FF_OMP(parallel num_threads(ff_threads_for(rows * d, LN_GRAIN)))
    {
        FF_OMP(for schedule(static))
        for (size_t c = 0; c < nchunks; c++) {
            float *pw = partial + c * 2 * d, *pb = pw + d;
            memset(pw, 0, 2 * d * sizeof(float));
            size_t i1 = (c + 1) * FF_LN_ROW_CHUNK < rows ? (c + 1) * FF_LN_ROW_CHUNK : rows;
            for (size_t i = c * FF_LN_ROW_CHUNK; i < i1; i++)
                leaf(dx + i * d, pw, pb, dy + i * d, x + i * d, r ? r + i * d : NULL, weight, mean[i], rstd[i], d);
        }
        /* implicit barrier: all partials written. Combine in chunk order; one
         * owner per block of 64 columns, so each chunk's read is contiguous. */
        FF_OMP(for schedule(static))
        for (size_t j0 = 0; j0 < d; j0 += 64) {
            size_t nj = d - j0 < 64 ? d - j0 : 64;
            double sw[64] = {0}, sb[64] = {0};
            for (size_t c = 0; c < nchunks; c++) {
                const float *pw = partial + c * 2 * d + j0, *pb = pw + d;
                for (size_t j = 0; j < nj; j++) {
                    sw[j] += pw[j];
                    sb[j] += pb[j];
                }
            }
            for (size_t j = 0; j < nj; j++) {
                dweight[j0 + j] = accumulate ? dweight[j0 + j] + (float)sw[j] : (float)sw[j];
                dbias[j0 + j] = accumulate ? dbias[j0 + j] + (float)sb[j] : (float)sb[j];
            }
        }
    }
    return 0;
}
