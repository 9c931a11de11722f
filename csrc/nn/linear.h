/* Linear layer with the PyTorch weight layout, y = x W^T + b, W (out, in),
 * through ff_gemm (bf16 = 1: every product in bf16, see gemm.h): forward is
 * one NT product with the bias in its epilogue; backward is dx = dy W (NN),
 * dW = dy^T x (TN) and a column sum.
 * Bitwise identical for any thread count (GEMMs never split k; the column
 * sum runs over fixed row chunks combined in a fixed order).
 * Each returns 0, or -1 when a workspace could not be allocated. */
#ifndef FF_LINEAR_H
#define FF_LINEAR_H

#include <stddef.h>

#include "gemm/gemm.h"

/* y is (rows, out); x is (rows, in), weight (out, in), bias (out,) or NULL;
 * act is applied after the bias (FF_ACT_NONE for a plain linear layer). */
int ff_linear_forward(float *y, const float *x, const float *weight, const float *bias, ff_activation_t act,
                      size_t rows, size_t in, size_t out, int bf16);

/* dx (rows, in) or NULL to skip it, dweight (out, in), dbias (out,) or NULL;
 * dy is (rows, out), x (rows, in), weight (out, in). */
int ff_linear_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x, const float *weight,
                       size_t rows, size_t in, size_t out, int bf16);

/* s (n,) = sum over rows of x (rows, n), or s += that sum when accumulate:
 * rows in fixed chunks of FF_COLSUM_CHUNK, each summed in order, the chunk
 * sums added in order (then to s). A bias gradient is this column sum. */
#define FF_COLSUM_CHUNK 128
int ff_colsum(float *s, const float *x, size_t rows, size_t n, int accumulate);

#endif
