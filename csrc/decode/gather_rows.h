/* In-place row selection of a time-major cache, the beam reorder of the
 * decoder's key/value cache: for every slice t < T of buf (T, R_old, W)
 * (slices `slice_stride` floats apart), row r becomes row rows[r] for
 * r < R_new (R_new <= R_old; rows[r] in [0, R_old)). Only rows that change
 * are copied (a beam that continues itself costs nothing), through a
 * per-thread scratch, so sources are read before any row is overwritten.
 * Slices are independent (one owner thread each). */
#ifndef FF_GATHER_ROWS_H
#define FF_GATHER_ROWS_H

#include <stddef.h>
#include <stdint.h>

/* Returns 0, or -1 when out of memory. */
int ff_gather_rows(float *buf, size_t T, size_t slice_stride, size_t W, const int64_t *rows, size_t R_new);

#endif
