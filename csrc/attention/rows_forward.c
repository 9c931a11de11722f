/* Attention forward one query row at a time: for few queries per head
 * (cached decoding: one new token per row against its cached keys, or a
 * sentence's beams against its memory). Per (batch, head): each query's
 * scores by dot products (no padding of the query block to the flash
 * kernel's 64 columns), a row softmax, and its weighted sum of values.
 * Memory-bound on the keys and values: the leaves keep several loads in
 * flight. Memory: per thread one row of Tk scores.
 * No dropout (the binding sends dropout to the flash kernel).
 *
 * Determinism: a (batch, head) unit's arithmetic depends on the unit alone,
 * so any thread split gives the same bits. */
#include <math.h>

#include "attention/attn_internal.h"
#include "runtime/runtime.h"
#include "runtime/scratch.h"

/* Multiply-adds per thread worth starting it for. */
#define ROWS_GRAIN 32768

static void rows_unit(float *out, ff_attn_view_t so, float *lse, const float *q, ff_attn_view_t sq, const float *k,
                      ff_attn_view_t sk, const float *v, ff_attn_view_t sv, const uint8_t *kpm,
                      const ff_attn_dims_t *d, const ff_attn_leaves_t *L, float *S, float scale, size_t b, size_t h) {
    const size_t Tq = d->Tq, Tk = d->Tk, dk = d->dk;
    if (Tk == 0) { /* no key: out 0, lse -inf (and no pointer arithmetic on absent keys) */
        for (size_t i = 0; i < Tq; i++) {
            float *o = out + b * so.batch + h * so.head + i * so.row;
            for (size_t c = 0; c < dk; c++) o[c] = 0.0f;
            lse[(b * d->H + h) * Tq + i] = -INFINITY;
        }
        return;
    }
    const float *qh = q + b * sq.batch + h * sq.head;
    const float *kh = k + b * sk.batch + h * sk.head;
    const uint8_t *kb = kpm ? kpm + b * Tk : NULL;
    for (size_t i = 0; i < Tq; i++) {
        float *s = S;
        const size_t seen = d->causal ? (i + 1 < Tk ? i + 1 : Tk) : Tk; /* causal: keys j <= i */
        L->scores(s, qh + i * sq.row, kh, sk.row, seen, dk, scale);
        if (kb)
            for (size_t j = 0; j < seen; j++)
                if (kb[j]) s[j] = -INFINITY;
        lse[(b * d->H + h) * Tq + i] = L->softmax_row(s, seen); /* s becomes P; a row seeing no key is 0 */
        L->weighted_sum(out + b * so.batch + h * so.head + i * so.row, s, v + b * sv.batch + h * sv.head, sv.row,
                        seen, dk);
    }
}

int ff_attention_rows_forward(float *out, ff_attn_view_t so, float *lse, const float *q, ff_attn_view_t sq,
                              const float *k, ff_attn_view_t sk, const float *v, ff_attn_view_t sv,
                              const uint8_t *key_padding_mask, const ff_attn_dims_t *d) {
    const size_t units = d->B * d->H;
    if (units == 0 || d->Tq == 0) return 0;
    const ff_attn_leaves_t *L = ff_attn_leaves();
    const float scale = (float)(1.0 / sqrt((double)d->dk)); /* in double, cast once: as the reference */
    const size_t sbytes = (d->Tk + 16) * sizeof(float);
    int err = 0;
    int nt = ff_threads_for(units * d->Tq * (d->Tk + 1) * d->dk * 2, ROWS_GRAIN);
    (void)nt;
#if FF_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        float *S = ff_scratch(FF_SCRATCH_ATTN_FORWARD, sbytes);
        if (!S) {
#if FF_HAVE_OPENMP
#pragma omp atomic write
#endif
            err = -1;
        }
#if FF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t u = 0; u < units; u++)
            if (S) rows_unit(out, so, lse, q, sq, k, sk, v, sv, key_padding_mask, d, L, S, scale, u / d->H, u % d->H);
    }
    return err;
}
