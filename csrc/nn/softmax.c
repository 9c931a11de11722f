#include "nn/softmax.h"

#include <math.h>

#include "runtime/runtime.h"

/* Elements per thread worth starting it for. */
#define SOFTMAX_GRAIN 16384

/* Portable leaf: libm expf, sums in double. */
void ff_softmax_fwd_row_generic(float *y, const float *x, const uint8_t *bm, const float *am, size_t n) {
    float m = -INFINITY;
    for (size_t j = 0; j < n; j++) {
        if (bm && bm[j]) continue;
        float s = am ? x[j] + am[j] : x[j];
        if (s > m) m = s;
    }
    if (!isfinite(m)) m = 0.0f; /* all masked: exp(-inf - 0) = 0, not exp(nan) */
    double sum = 0.0;
    for (size_t j = 0; j < n; j++) {
        float e = (bm && bm[j]) ? 0.0f : expf((am ? x[j] + am[j] : x[j]) - m);
        y[j] = e;
        sum += e;
    }
    if (sum > 0.0) {
        float inv = (float)(1.0 / sum);
        for (size_t j = 0; j < n; j++) y[j] *= inv;
    }
}

void ff_softmax_bwd_row_generic(float *dx, const float *dy, const float *y, size_t n) {
    double dot = 0.0;
    for (size_t j = 0; j < n; j++) dot += (double)dy[j] * y[j];
    float d = (float)dot;
    for (size_t j = 0; j < n; j++) dx[j] = y[j] * (dy[j] - d);
}

/* Element offset of row r's mask row: decompose r over lead_shape (C order). */
static inline size_t mask_row_offset(size_t r, int nlead, const int64_t *shape, const int64_t *strides) {
    size_t off = 0;
    for (int k = nlead - 1; k >= 0 && r; k--) {
        size_t dim = (size_t)shape[k];
        off += (r % dim) * (size_t)strides[k];
        r /= dim;
    }
    return off;
}

void ff_softmax_forward(float *y, const float *x, const void *mask, int mask_kind, size_t rows, size_t n,
                        int nlead, const int64_t *lead_shape, const int64_t *mask_strides) {
    if (rows == 0 || n == 0) return;
    ff_softmax_fwd_row_fn leaf = FF_SIMD_PICK(ff_softmax_fwd_row);
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(rows * n, SOFTMAX_GRAIN)))
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *bm = NULL;
        const float *am = NULL;
        if (mask_kind != FF_MASK_NONE) {
            size_t off = mask_row_offset(r, nlead, lead_shape, mask_strides);
            if (mask_kind == FF_MASK_BOOL) bm = (const uint8_t *)mask + off;
            else am = (const float *)mask + off;
        }
        leaf(y + r * n, x + r * n, bm, am, n);
    }
}

void ff_softmax_backward(float *dx, const float *dy, const float *y, size_t rows, size_t n) {
    if (rows == 0 || n == 0) return;
    ff_softmax_bwd_row_fn leaf = FF_SIMD_PICK(ff_softmax_bwd_row);
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(rows * n, SOFTMAX_GRAIN)))
    for (size_t r = 0; r < rows; r++) leaf(dx + r * n, dy + r * n, y + r * n, n);
}
