#include <string.h>

#include "decode/gather_rows.h"
#include "runtime/runtime.h"
#include "runtime/scratch.h"

int ff_gather_rows(float *buf, size_t T, size_t slice_stride, size_t W, const int64_t *rows, size_t R_new) {
    size_t moved = 0;
    for (size_t r = 0; r < R_new; r++) moved += rows[r] != (int64_t)r;
    if (moved == 0 || T == 0) return 0;
    int failed = 0;
    int nt = ff_threads_for(T * moved * W, 16384);
    (void)nt;
#if FF_HAVE_OPENMP
#pragma omp parallel num_threads(nt) reduction(|| : failed)
#endif
    {
        float *tmp = ff_scratch(FF_SCRATCH_0, moved * W * sizeof(float));
        failed = tmp == NULL;
#if FF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t t = 0; t < T; t++) {
            if (tmp == NULL) continue; /* every thread still meets the loop: no barrier left waiting */
            float *slice = buf + t * slice_stride;
            size_t m = 0;
            for (size_t r = 0; r < R_new; r++)
                if (rows[r] != (int64_t)r) memcpy(tmp + W * m++, slice + W * (size_t)rows[r], W * sizeof(float));
            m = 0;
            for (size_t r = 0; r < R_new; r++)
                if (rows[r] != (int64_t)r) memcpy(slice + W * r, tmp + W * m++, W * sizeof(float));
        }
    }
    return failed ? -1 : 0;
}
