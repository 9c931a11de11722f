/* Reusable per-calling-thread workspace for kernels that need temporary
 * buffers (partial sums, sort arrays). Grow-only, so a training loop that
 * calls the same kernel with the same shapes allocates once.
 *
 * Thread-local to the *calling* thread (the one that released the GIL), not
 * to OpenMP workers: two Python threads may run kernels at once. A kernel
 * asks once before its parallel region and hands slices to its workers. */
#ifndef FF_SCRATCH_H
#define FF_SCRATCH_H

#include <stddef.h>

/* Slots let one kernel hold several buffers at once. */
enum { FF_SCRATCH_SLOTS = 4 };

/* A 64-byte-aligned buffer of at least `bytes` for `slot`, or NULL when out
 * of memory. Its contents are undefined; valid until the next call for the
 * same slot from the same thread. */
void *ff_scratch(int slot, size_t bytes);

#endif
