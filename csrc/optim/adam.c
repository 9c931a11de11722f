#include <math.h>

#include "optim/optim.h"
#include "runtime/runtime.h"

#define OPTIM_CHUNK 65536 /* elements per unit of parallel work */

/* One element, in the reference's order of float32 roundings. */
static inline void adam_elem(float *p, float *m, float *v, float g, const ff_adam_args *a) {
    float pi = *p;
    if (a->decoupled) pi = pi * a->decay;
    if (a->l2) g = g + a->wd * pi;
    float mi = *m * a->beta1 + a->one_minus_beta1 * g;
    float vi = *v * a->beta2 + a->one_minus_beta2 * g * g;
    double denom = (double)sqrtf(vi) / a->sqrt_bc2 + a->eps;
    *p = (float)((double)pi - a->step_size * ((double)mi / denom));
    *m = mi;
    *v = vi;
}

void ff_adam_range_generic(float *p, float *m, float *v, const float *g, size_t n, const ff_adam_args *a) {
    for (size_t i = 0; i < n; i++) adam_elem(p + i, m + i, v + i, g[i], a);
}

void ff_adam_step(float *param, float *exp_avg, float *exp_avg_sq, const float *grad, size_t n, long step, double lr,
                  double beta1, double beta2, double eps, double weight_decay, int decoupled) {
    ff_adam_args a;
    a.beta1 = (float)beta1;
    a.one_minus_beta1 = (float)(1.0 - beta1);
    a.beta2 = (float)beta2;
    a.one_minus_beta2 = (float)(1.0 - beta2);
    a.l2 = weight_decay != 0.0 && !decoupled;
    a.decoupled = weight_decay != 0.0 && decoupled;
    a.wd = (float)weight_decay;
    a.decay = (float)(1.0 - lr * weight_decay);
    a.step_size = lr / (1.0 - pow(beta1, (double)step));
    a.sqrt_bc2 = sqrt(1.0 - pow(beta2, (double)step));
    a.eps = eps;
    ff_adam_range_fn leaf = FF_SIMD_PICK(ff_adam_range);
    size_t nchunks = (n + OPTIM_CHUNK - 1) / OPTIM_CHUNK;
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(nchunks, 1)))
    for (size_t c = 0; c < nchunks; c++) {
        size_t i0 = c * OPTIM_CHUNK, len = n - i0 < OPTIM_CHUNK ? n - i0 : OPTIM_CHUNK;
        leaf(param + i0, exp_avg + i0, exp_avg_sq + i0, grad + i0, len, &a);
    }
}
