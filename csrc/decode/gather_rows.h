/* In-place row selection of a row-major cache, the beam reorder of the
 * decoder's key/value cache: buf holds rows `row_stride` floats apart, each
 * of P parts `part_stride` floats apart (a row's keys and values per head);
 * for r < R_new, the first `len` floats of every part of row r become those
 * of row rows[r] (rows[r] among the rows that exist). Only rows that change
 * are copied (a beam that continues itself costs nothing), through scratch,
 * so every source is read before any row is overwritten. */
#ifndef FF_GATHER_ROWS_H
#define FF_GATHER_ROWS_H

#include <stddef.h>
#include <stdint.h>

/* Returns 0, or -1 when out of memory. */
int ff_gather_rows(float *buf, size_t row_stride, size_t P, size_t part_stride, size_t len, const int64_t *rows,
                   size_t R_new);

#endif
