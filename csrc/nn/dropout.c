#include "nn/dropout.h"

#include <string.h>

#include "random/philox.h"
#include "runtime/runtime.h"
#include "runtime/simd_target.h"

/* Philox blocks (4 elements each) per unit of parallel work; a multiple of 16
 * so the SIMD leaves cover whole chunks. */
#define DROPOUT_CHUNK_BLOCKS 2048

#if FF_X86
void ff_dropout_blocks_avx512(float *y, const float *x, size_t b0, size_t b1, uint32_t thr, float scale,
                              uint64_t seed, uint64_t step, uint64_t site);
void ff_dropout_mask_blocks_avx512(uint8_t *keep, size_t b0, size_t b1, uint32_t thr, uint64_t seed, uint64_t step,
                                   uint64_t site);
void ff_dropout_blocks_avx2(float *y, const float *x, size_t b0, size_t b1, uint32_t thr, float scale, uint64_t seed,
                            uint64_t step, uint64_t site);
void ff_dropout_mask_blocks_avx2(uint8_t *keep, size_t b0, size_t b1, uint32_t thr, uint64_t seed, uint64_t step,
                                 uint64_t site);
#define SIMD_LEVEL ((int)ff_simd_active())
#else
#define SIMD_LEVEL 0
#endif

/* The largest b <= b1 with [b0, b) whole 16-block groups inside n elements:
 * the SIMD leaf does [b0, b), the scalar code the rest. */
static size_t vector_end(size_t b0, size_t b1, size_t n) {
    size_t full = n / 4; /* blocks entirely inside n */
    size_t e = b1 < full ? b1 : full;
    return e <= b0 ? b0 : b0 + (e - b0) / 16 * 16;
}

/* Elements [4*b0, min(4*b1, n)) of the forward; one owner per element. */
static void dropout_blocks(float *y, const float *x, size_t n, size_t b0, size_t b1, uint64_t thr, float scale,
                           uint64_t seed, uint64_t step, uint64_t site) {
    for (size_t b = b0; b < b1; b++) {
        uint32_t w[4];
        ff_philox_block(w, b, seed, step, site);
        size_t i0 = 4 * b;
        size_t m = n - i0 < 4 ? n - i0 : 4;
        for (size_t j = 0; j < m; j++) y[i0 + j] = (uint64_t)w[j] >= thr ? x[i0 + j] * scale : 0.0f;
    }
}

void ff_dropout_forward(float *y, const float *x, size_t n, double p, uint64_t seed, uint64_t step,
                        uint64_t site) {
    if (n == 0) return;
    if (p == 0.0) { /* the reference returns a copy */
        if (y != x) memmove(y, x, n * sizeof(float));
        return;
    }
    if (p >= 1.0) {
        memset(y, 0, n * sizeof(float));
        return;
    }
    uint64_t thr = ff_dropout_threshold(p);
    float scale = (float)(1.0 / (1.0 - p)); /* in double, cast once: as the reference */
    size_t nblocks = (n + 3) / 4;
    size_t nchunks = (nblocks + DROPOUT_CHUNK_BLOCKS - 1) / DROPOUT_CHUNK_BLOCKS;
    int vec = SIMD_LEVEL;
    (void)vec;
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(nchunks, 1)))
    for (size_t c = 0; c < nchunks; c++) {
        size_t b0 = c * DROPOUT_CHUNK_BLOCKS;
        size_t b1 = b0 + DROPOUT_CHUNK_BLOCKS < nblocks ? b0 + DROPOUT_CHUNK_BLOCKS : nblocks;
        if (vec) {
#if FF_X86
            size_t e = vector_end(b0, b1, n);
            if (vec >= FF_SIMD_AVX512) ff_dropout_blocks_avx512(y, x, b0, e, (uint32_t)thr, scale, seed, step, site);
            else ff_dropout_blocks_avx2(y, x, b0, e, (uint32_t)thr, scale, seed, step, site);
            b0 = e;
#endif
        }
        dropout_blocks(y, x, n, b0, b1, thr, scale, seed, step, site);
    }
}

void ff_dropout_mask(uint8_t *keep, size_t n, double p, uint64_t seed, uint64_t step, uint64_t site) {
    if (n == 0) return;
    uint64_t thr = ff_dropout_threshold(p);
    size_t nblocks = (n + 3) / 4;
    size_t nchunks = (nblocks + DROPOUT_CHUNK_BLOCKS - 1) / DROPOUT_CHUNK_BLOCKS;
    int vec = SIMD_LEVEL;
    (void)vec;
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(nchunks, 1)))
    for (size_t c = 0; c < nchunks; c++) {
        size_t b0 = c * DROPOUT_CHUNK_BLOCKS;
        size_t b1 = b0 + DROPOUT_CHUNK_BLOCKS < nblocks ? b0 + DROPOUT_CHUNK_BLOCKS : nblocks;
        if (vec && thr < ((uint64_t)1 << 32)) {
#if FF_X86
            size_t e = vector_end(b0, b1, n);
            if (vec >= FF_SIMD_AVX512) ff_dropout_mask_blocks_avx512(keep, b0, e, (uint32_t)thr, seed, step, site);
            else ff_dropout_mask_blocks_avx2(keep, b0, e, (uint32_t)thr, seed, step, site);
            b0 = e;
#endif
        }
        for (size_t b = b0; b < b1; b++) {
            uint32_t w[4];
            ff_philox_block(w, b, seed, step, site);
            size_t i0 = 4 * b;
            size_t m = n - i0 < 4 ? n - i0 : 4;
            for (size_t j = 0; j < m; j++) keep[i0 + j] = (uint64_t)w[j] >= thr;
        }
    }
}
