#include "nn/ffn.h"

#include "nn/activation.h"
#include "nn/linear.h"
#include "runtime/scratch.h"

#define SCRATCH_HIDDEN 2 /* ff_scratch slot of act(hidden_pre) / its gradient */

int ff_ffn_forward(float *y, float *hidden_pre, const float *x, const float *w1, const float *b1, const float *w2,
                   const float *b2, ff_activation_t act, size_t rows, size_t d, size_t d_ff, int bf16) {
    if (rows == 0) return 0;
    float *hidden = ff_scratch(SCRATCH_HIDDEN, rows * d_ff * sizeof(float));
    if (!hidden) return -1;
    if (ff_linear_forward(hidden_pre, x, w1, b1, FF_ACT_NONE, rows, d, d_ff, bf16)) return -1;
    ff_activation_forward(hidden, hidden_pre, rows * d_ff, act);
    return ff_linear_forward(y, hidden, w2, b2, FF_ACT_NONE, rows, d_ff, d, bf16);
}

int ff_ffn_backward(float *dx, float *dw1, float *db1, float *dw2, float *db2, const float *dy, const float *x,
                    const float *hidden_pre, const float *w1, const float *w2, ff_activation_t act, size_t rows,
                    size_t d, size_t d_ff, int bf16) {
    float *h = ff_scratch(SCRATCH_HIDDEN, rows * d_ff * sizeof(float));
    if (!h) return -1;
    /* one (rows, d_ff) buffer: first act(hidden_pre) for dW2, then the gradient of hidden_pre */
    ff_activation_forward(h, hidden_pre, rows * d_ff, act);
    if (ff_linear_backward(NULL, dw2, db2, dy, h, w2, rows, d_ff, d, bf16)) return -1;
    if (rows > 0 && d_ff > 0 && d > 0 &&
        ff_gemm(bf16, 0, 0, rows, d_ff, d, 1.0f, dy, d, w2, d_ff, 0.0f, h, d_ff, NULL, FF_ACT_NONE))
        return -1;
    if (rows > 0 && d > 0 && d_ff > 0) ff_activation_backward(h, h, hidden_pre, rows * d_ff, act);
    else if (rows > 0 && d == 0)
        for (size_t i = 0; i < rows * d_ff; i++) h[i] = 0.0f; /* dy has no columns: no gradient flows */
    return ff_linear_backward(dx, dw1, db1, h, x, w1, rows, d, d_ff, bf16);
}
