#include "nn/linear.h"

#include <string.h>

#include "runtime/scratch.h"
#include "runtime/runtime.h"

#define COLSUM_GRAIN 32768 /* elements per thread worth starting it for */
#define SCRATCH_COLSUM 3   /* ff_scratch slot of the chunk partial sums */

static inline size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* p (n,) = sum of rows [r0, r1) of x, in order. */
static void chunk_sum(float *p, const float *x, size_t r0, size_t r1, size_t n) {
    memcpy(p, x + r0 * n, n * sizeof(float));
    for (size_t r = r0 + 1; r < r1; r++) {
        const float *xr = x + r * n;
        for (size_t j = 0; j < n; j++) p[j] += xr[j];
    }
}

int ff_colsum(float *s, const float *x, size_t rows, size_t n, int accumulate) {
    if (n == 0) return 0;
    if (rows == 0) {
        if (!accumulate) memset(s, 0, n * sizeof(float));
        return 0;
    }
    const size_t nch = (rows + FF_COLSUM_CHUNK - 1) / FF_COLSUM_CHUNK;
    float *part = ff_scratch(SCRATCH_COLSUM, nch * n * sizeof(float));
    if (!part) return -1;
    FF_OMP(parallel num_threads(ff_threads_for(rows * n, COLSUM_GRAIN)))
    {
        FF_OMP(for schedule(static))
        for (size_t c = 0; c < nch; c++)
            chunk_sum(part + c * n, x, c * FF_COLSUM_CHUNK, min_sz(rows, (c + 1) * FF_COLSUM_CHUNK), n);
        /* chunk sums in chunk order (into chunk 0's row), columns split in blocks of 256 */
        FF_OMP(for schedule(static))
        for (size_t j0 = 0; j0 < n; j0 += 256) {
            size_t j1 = min_sz(n, j0 + 256);
            for (size_t c = 1; c < nch; c++) {
                const float *pc = part + c * n;
                for (size_t j = j0; j < j1; j++) part[j] += pc[j];
            }
            if (accumulate)
                for (size_t j = j0; j < j1; j++) s[j] += part[j];
            else
                memcpy(s + j0, part + j0, (j1 - j0) * sizeof(float));
        }
    }
    return 0;
}

int ff_linear_forward(float *y, const float *x, const float *weight, const float *bias, ff_activation_t act,
                      size_t rows, size_t in, size_t out, int bf16) {
    if (rows == 0 || out == 0) return 0;
    /* y = x W^T: B transposed, which packing absorbs */
    return ff_gemm(bf16, 0, 1, rows, out, in, 1.0f, x, in, weight, in, 0.0f, y, out, bias, act);
}

int ff_linear_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x, const float *weight,
                       size_t rows, size_t in, size_t out, int bf16) {
    if (out == 0) {
        if (dx) memset(dx, 0, rows * in * sizeof(float));
        return 0;
    }
    if (in > 0) {
        /* dW (out, in) = dy^T x: A transposed */
        if (ff_gemm(bf16, 1, 0, out, in, rows, 1.0f, dy, out, x, in, 0.0f, dweight, in, NULL, FF_ACT_NONE))
            return -1;
        /* dx (rows, in) = dy W */
        if (dx && rows > 0 &&
            ff_gemm(bf16, 0, 0, rows, in, out, 1.0f, dy, out, weight, in, 0.0f, dx, in, NULL, FF_ACT_NONE))
            return -1;
    }
    return dbias ? ff_colsum(dbias, dy, rows, out, 0) : 0;
}
