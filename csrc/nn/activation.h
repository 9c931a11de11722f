/* Elementwise activations: relu and the exact (erf) GELU, forward and
 * backward, each element owned by one thread. act is FF_ACT_RELU or
 * FF_ACT_GELU (gemm/gemm.h). */
#ifndef FF_ACTIVATION_H
#define FF_ACTIVATION_H

#include <stddef.h>
#include <stdint.h>

#include "gemm/gemm.h"
#include "runtime/runtime.h"

/* y, x are (n,): y = act(x). y may alias x. */
void ff_activation_forward(float *y, const float *x, size_t n, ff_activation_t act);

/* dx, dy, x are (n,): dx = dy * act'(x) (relu: 0 at x <= 0). dx may alias dy. */
void ff_activation_backward(float *dx, const float *dy, const float *x, size_t n, ff_activation_t act);

/* relu's backward from x stored in bf16 (uint16_t, gemm.h's ff_to_bf16):
 * dx = dy where x > 0, else 0. dx may alias dy. */
void ff_relu_backward_bf16(float *dx, const float *dy, const uint16_t *x, size_t n);

/* y (n,) = GELU(x): the portable leaf is gemm/epilogue.c's (libm erfcf), the
 * SIMD ones the GEMM kernels' (simd/math.h), so ops.gelu_forward and the
 * fused epilogue give the same bits on every path. */
typedef void (*ff_gelu_row_fn)(float *y, const float *x, size_t n);
FF_SIMD_LEAVES(void, ff_gelu_row, (float *y, const float *x, size_t n));

#endif
