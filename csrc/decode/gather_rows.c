#include <string.h>

#include "decode/gather_rows.h"
#include "runtime/runtime.h"
#include "runtime/scratch.h"

int ff_gather_rows(float *buf, size_t row_stride, size_t P, size_t part_stride, size_t len, const int64_t *rows,
                   size_t R_new) {
    size_t moved = 0;
    for (size_t r = 0; r < R_new; r++) moved += rows[r] != (int64_t)r;
    if (moved == 0 || P == 0 || len == 0) return 0;
    /* the moved rows, then their parts staged in order: one (row, part) copy per unit */
    size_t *which = ff_scratch(FF_SCRATCH_1, moved * sizeof(size_t));
    float *tmp = ff_scratch(FF_SCRATCH_0, moved * P * len * sizeof(float));
    if (!which || !tmp) return -1;
    for (size_t r = 0, m = 0; r < R_new; r++)
        if (rows[r] != (int64_t)r) which[m++] = r;
    const size_t units = moved * P;
    int nt = ff_threads_for(units * len, 16384);
    (void)nt;
#if FF_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
#if FF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t u = 0; u < units; u++)
            memcpy(tmp + u * len, buf + (size_t)rows[which[u / P]] * row_stride + u % P * part_stride,
                   len * sizeof(float));
        /* the loop's barrier: every source is staged before a row is overwritten */
#if FF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t u = 0; u < units; u++)
            memcpy(buf + which[u / P] * row_stride + u % P * part_stride, tmp + u * len, len * sizeof(float));
    }
    return 0;
}
