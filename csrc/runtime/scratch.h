/* Reusable per-thread workspace for kernels that need temporary buffers
 * (partial sums, sort arrays, attention blocks, GEMM pack buffers).
 * Grow-only, so a training loop that calls the same kernel with the same
 * shapes allocates once; freed when the thread exits.
 *
 * Thread-local: two Python threads running kernels at once (GIL released)
 * never share a buffer, and each OpenMP worker has its own. A row-wise
 * kernel asks once before its parallel region and hands slices to its
 * workers; attention and GEMM workers ask inside the region. */
#ifndef FF_SCRATCH_H
#define FF_SCRATCH_H

#include <stddef.h>

/* Slots let one kernel hold several buffers at once, and a kernel keep its
 * own while it calls another (the FFN calls the GEMM). */
enum {
    FF_SCRATCH_0 = 0, /* 0..3: the row-wise kernels of csrc/nn and csrc/optim */
    FF_SCRATCH_1,
    FF_SCRATCH_2,
    FF_SCRATCH_3,
    FF_SCRATCH_ATTN_FORWARD, /* flash attention, per worker */
    FF_SCRATCH_ATTN_BACKWARD,
    FF_SCRATCH_GEMM_A, /* GEMM pack buffers, per worker */
    FF_SCRATCH_GEMM_B,
    FF_SCRATCH_GEMM_STAGE, /* a bf16 operand's block widened to floats, per worker */
    FF_SCRATCH_GEMM_C,     /* a float copy of a bf16 C, per caller */
    FF_SCRATCH_SLOTS
};

/* A 64-byte-aligned buffer of at least `bytes` for `slot`, or NULL when out
 * of memory. Its contents are undefined; valid until the next call for the
 * same slot from the same thread. */
void *ff_scratch(int slot, size_t bytes);

#endif
