/* Inverted dropout with masks from Philox4x32-10 (see random/philox.h), bit
 * identical to fastformer.reference.dropout and independent of the thread
 * count: element i's fate depends only on (seed, step, site, i). Backward is
 * the forward applied to dy (the mask is regenerated, never stored). */
#ifndef FF_DROPOUT_H
#define FF_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

/* y, x are (n,) (any shape, flat C order); 0 <= p <= 1. y = x * float(1/(1-p))
 * where kept, else 0. y may alias x. */
void ff_dropout_forward(float *y, const float *x, size_t n, double p, uint64_t seed, uint64_t step,
                        uint64_t site);

/* keep is (n,): 1 where element i survives dropout p, else 0. */
void ff_dropout_mask(uint8_t *keep, size_t n, double p, uint64_t seed, uint64_t step, uint64_t site);

#endif
