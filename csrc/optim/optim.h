/* One-pass optimizer updates over flat float32 buffers, PyTorch's rules, and
 * the global gradient norm. Each element has one owner thread and the norm is
 * summed in fixed-size chunks combined in chunk order (in double), so every
 * result is bitwise identical for any thread count.
 *
 * The arithmetic follows fastformer/reference/optim.py as NumPy runs it on
 * float32 buffers: the moment updates round in float32; the final step
 * lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps) is computed in double and the
 * parameter rounded to float32 once. */
#ifndef FF_OPTIM_H
#define FF_OPTIM_H

#include <stddef.h>

#define FF_NORM_CHUNK 16384

/* Scalars of one Adam step, prepared once by ff_adam_step. */
typedef struct {
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float wd;            /* L2 weight decay added to the gradient (Adam), else 0 */
    float decay;         /* param *= decay first (AdamW), else 1 */
    int l2, decoupled;
    double step_size;    /* lr / (1 - beta1^step) */
    double sqrt_bc2;     /* sqrt(1 - beta2^step) */
    double eps;
} ff_adam_args;

/* param, grad, exp_avg, exp_avg_sq are (n,); step >= 1. decoupled = AdamW. */
void ff_adam_step(float *param, float *exp_avg, float *exp_avg_sq, const float *grad, size_t n, long step, double lr,
                  double beta1, double beta2, double eps, double weight_decay, int decoupled);

/* param, grad, momentum_buffer are (n,); step >= 1 (step 1 sets the buffer). */
void ff_sgd_step(float *param, float *momentum_buffer, const float *grad, size_t n, long step, double lr,
                 double momentum, double dampening, int nesterov, double weight_decay);

/* L2 norm of grad (n,), accumulated in double. NaN when out of memory. */
double ff_grad_norm(const float *grad, size_t n);

/* Scale grad (n,) in place by float(max_norm / (norm + 1e-6)) when that is < 1;
 * returns the norm before clipping. */
double ff_clip_grad_norm(float *grad, size_t n, double max_norm);

/* Leaves over a contiguous range. */
typedef void (*ff_adam_range_fn)(float *p, float *m, float *v, const float *g, size_t n, const ff_adam_args *a);
void ff_adam_range_generic(float *p, float *m, float *v, const float *g, size_t n, const ff_adam_args *a);
void ff_adam_range_avx2(float *p, float *m, float *v, const float *g, size_t n, const ff_adam_args *a);
void ff_adam_range_avx512(float *p, float *m, float *v, const float *g, size_t n, const ff_adam_args *a);
typedef double (*ff_sumsq_fn)(const float *x, size_t n);
double ff_sumsq_generic(const float *x, size_t n);
double ff_sumsq_avx2(const float *x, size_t n);
double ff_sumsq_avx512(const float *x, size_t n);

#endif
