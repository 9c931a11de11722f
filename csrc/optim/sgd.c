#include "optim/optim.h"
#include "runtime/runtime.h"

#define OPTIM_CHUNK 65536

/* float32 scalars, one rounding per operation, in the reference's order. A
 * plain loop GCC vectorises; the update is memory-bound. */
static void sgd_range(float *restrict p, float *restrict buf, const float *restrict g, size_t n, float lr, float mom,
                      float omd, float wd, int first, int nesterov) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        if (wd != 0.0f) gi = gi + wd * p[i];
        if (mom != 0.0f) {
            float b = first ? gi : buf[i] * mom + omd * gi;
            buf[i] = b;
            gi = nesterov ? gi + mom * b : b;
        }
        p[i] = p[i] - lr * gi;
    }
}

void ff_sgd_step(float *param, float *momentum_buffer, const float *grad, size_t n, long step, double lr,
                 double momentum, double dampening, int nesterov, double weight_decay) {
    size_t nchunks = (n + OPTIM_CHUNK - 1) / OPTIM_CHUNK;
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(nchunks, 1)))
    for (size_t c = 0; c < nchunks; c++) {
        size_t i0 = c * OPTIM_CHUNK, len = n - i0 < OPTIM_CHUNK ? n - i0 : OPTIM_CHUNK;
        sgd_range(param + i0, momentum_buffer + i0, grad + i0, len, (float)lr, (float)momentum,
                  (float)(1.0 - dampening), (float)weight_decay, step == 1, nesterov);
    }
}
