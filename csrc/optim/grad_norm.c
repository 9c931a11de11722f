#include <math.h>

#include "runtime/scratch.h"
#include "optim/optim.h"
#include "runtime/runtime.h"

/* 4 double accumulators in the AVX2 leaf's lane order; rounding differs from
 * the SIMD leaves only through FMA. */
double ff_sumsq_generic(const float *x, size_t n) {
    double acc[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++) acc[l] += (double)x[i + l] * x[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += (double)x[i] * x[i];
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

double ff_grad_norm(const float *grad, size_t n) {
    if (n == 0) return 0.0;
    ff_simd_t s = ff_simd_active();
    ff_sumsq_fn leaf = s >= FF_SIMD_AVX512 ? ff_sumsq_avx512 : s >= FF_SIMD_AVX2 ? ff_sumsq_avx2 : ff_sumsq_generic;
    size_t nchunks = (n + FF_NORM_CHUNK - 1) / FF_NORM_CHUNK;
    double *partial = ff_scratch(2, nchunks * sizeof(double));
    if (partial == NULL) return NAN;
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(nchunks, 4)))
    for (size_t c = 0; c < nchunks; c++) {
        size_t i0 = c * FF_NORM_CHUNK, len = n - i0 < FF_NORM_CHUNK ? n - i0 : FF_NORM_CHUNK;
        partial[c] = leaf(grad + i0, len);
    }
    double total = 0.0;
    for (size_t c = 0; c < nchunks; c++) total += partial[c];
    return sqrt(total);
}

double ff_clip_grad_norm(float *grad, size_t n, double max_norm) {
    double norm = ff_grad_norm(grad, n);
    double coef = max_norm / (norm + 1e-6);
    /* As torch.nn.utils.clip_grad_norm_ and the reference; a non-finite norm
     * scales nothing (torch would turn every gradient into NaN or 0). */
    if (isfinite(norm) && coef < 1.0) {
        float c = (float)coef;
        size_t nchunks = (n + FF_NORM_CHUNK - 1) / FF_NORM_CHUNK;
        FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(nchunks, 4)))
        for (size_t ch = 0; ch < nchunks; ch++) {
            size_t i1 = (ch + 1) * FF_NORM_CHUNK < n ? (ch + 1) * FF_NORM_CHUNK : n;
            for (size_t i = ch * FF_NORM_CHUNK; i < i1; i++) grad[i] *= c;
        }
    }
    return norm;
}
