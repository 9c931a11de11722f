/* Position-wise feed-forward sublayer, FFN(x) = act(x W1^T + b1) W2^T + b2.
 *
 * hidden_pre = x W1^T + b1 is an output (the backward needs it), so the first
 * GEMM fuses only the bias: its act epilogue would give act(hidden_pre), from
 * which relu cannot give hidden_pre back. act(hidden_pre) then takes one
 * elementwise pass into a per-thread workspace, and the second GEMM fuses b2.
 * bf16 = 1 takes all four products in bf16 (ff_gemm).
 * Returns 0, or -1 when a workspace could not be allocated. */
#ifndef FF_FFN_H
#define FF_FFN_H

#include <stddef.h>

#include "gemm/gemm.h"

/* y (rows, d), hidden_pre (rows, d_ff); x (rows, d), w1 (d_ff, d), b1 (d_ff,),
 * w2 (d, d_ff), b2 (d,). */
int ff_ffn_forward(float *y, float *hidden_pre, const float *x, const float *w1, const float *b1, const float *w2,
                   const float *b2, ff_activation_t act, size_t rows, size_t d, size_t d_ff, int bf16);

/* dx (rows, d), dw1 (d_ff, d), db1 (d_ff,), dw2 (d, d_ff), db2 (d,); dy (rows, d),
 * x (rows, d), hidden_pre (rows, d_ff) from the forward, w1, w2 as above. */
int ff_ffn_backward(float *dx, float *dw1, float *db1, float *dw2, float *db2, const float *dy, const float *x,
                    const float *hidden_pre, const float *w1, const float *w2, ff_activation_t act, size_t rows,
                    size_t d, size_t d_ff, int bf16);

#endif
