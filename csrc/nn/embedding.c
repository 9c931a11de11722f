#include "nn/embedding.h"

#include <string.h>

#include "runtime/scratch.h"
#include "runtime/runtime.h"

#define EMB_GRAIN 16384 /* floats written worth a thread */

/* Portable leaves. Separate multiply and add (no FMA contraction in this
 * build) give exactly the reference's float32 rounding, as the SIMD leaves do. */
void ff_embedding_row_generic(float *y, const float *w, const float *p, size_t d, float scale) {
    for (size_t j = 0; j < d; j++) y[j] = w[j] * scale + p[j];
}

void ff_embedding_acc_generic(float *dw, const float *g, size_t d, float scale, int first) {
    if (first)
        for (size_t j = 0; j < d; j++) dw[j] = 0.0f + g[j] * scale; /* 0 + t: as the reference, -0 becomes +0 */
    else
        for (size_t j = 0; j < d; j++) dw[j] += g[j] * scale;
}

void ff_embedding_forward(float *y, const int64_t *ids, const float *weight, const float *positions, size_t ntok,
                          size_t T, size_t d, float scale) {
    ff_embedding_row_fn leaf = FF_SIMD_PICK(ff_embedding_row);
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(ntok * d, EMB_GRAIN)))
    for (size_t i = 0; i < ntok; i++) leaf(y + i * d, weight + (size_t)ids[i] * d, positions + (i % T) * d, d, scale);
}

int ff_embedding_backward(float *dweight, const float *dx, const int64_t *ids, size_t ntok, size_t V, size_t d,
                          float scale, int accumulate) {
    /* Counting sort of token indices by id, stable: start[v]..start[v+1] lists
     * the tokens of id v in increasing order. */
    size_t *start = ff_scratch(0, (V + 1) * sizeof(size_t));
    size_t *order = ff_scratch(1, (ntok ? ntok : 1) * sizeof(size_t));
    if (start == NULL || order == NULL) return -1;
    memset(start, 0, (V + 1) * sizeof(size_t));
    for (size_t i = 0; i < ntok; i++) start[ids[i] + 1]++;
    for (size_t v = 0; v < V; v++) start[v + 1] += start[v];
    /* fill with a moving cursor per id: start[v] is advanced, then restored */
    for (size_t i = 0; i < ntok; i++) order[start[ids[i]]++] = i;
    for (size_t v = V; v > 0; v--) start[v] = start[v - 1];
    start[0] = 0;

    ff_embedding_acc_fn leaf = FF_SIMD_PICK(ff_embedding_acc);
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(V * d, EMB_GRAIN)))
    for (size_t v = 0; v < V; v++) {
        float *dw = dweight + v * d;
        size_t k0 = start[v], k1 = start[v + 1];
        if (k0 == k1) {
            if (!accumulate) memset(dw, 0, d * sizeof(float));
            continue;
        }
        for (size_t k = k0; k < k1; k++) leaf(dw, dx + order[k] * d, d, scale, !accumulate && k == k0);
    }
    return 0;
}
