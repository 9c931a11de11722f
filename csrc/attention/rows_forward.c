/* Attention forward one query row at a time: for few queries per head
 * (cached decoding: one new token per row against its cached keys, or a
 * sentence's beams against its memory). Per (batch, head): each query's
 * scores by dot products (no padding of the query block to the flash
 * kernel's 64 columns), a row softmax, and its weighted sum of values.
 * Memory-bound on the keys and values: the leaves keep several loads in
 * flight. Memory: per thread one row of Tk scores and 2 Tk row pointers.
 * No dropout (the binding sends dropout to the flash kernel).
 *
 * With key_rows, key j of batch b lives in batch key_rows[b * ld + j] of
 * k and v: a beam search's cache where each row lists, per position, the
 * slot its history wrote there, so a beam reorder moves an index, never
 * the keys.
 *
 * With d->bf16, the unit's keys and values (unless d->kv_bf16 says they
 * hold bf16 values already) and queries are rounded to bf16 into scratch
 * first, and the probabilities as the flash forward rounds them: E =
 * exp(s - max s) rounded, out = (E V) / sum E.
 *
 * Determinism: a (batch, head) unit's arithmetic depends on the unit alone,
 * so any thread split gives the same bits. */
#include <math.h>

#include "attention/attn_internal.h"
#include "runtime/runtime.h"
#include "runtime/scratch.h"

/* Multiply-adds per thread worth starting it for. */
#define ROWS_GRAIN 32768

typedef struct {
    const int64_t *rows; /* NULL: key j of batch b is in batch b */
    size_t ld;
} key_map_t;

/* One query's softmax and weighted sum in the bf16 order (the flash
 * forward's on one key block): o = (r(E) V) / l, E = exp(s - max s), l =
 * sum E; no key seen: o = 0, lse = -inf. */
static void softmax_bf16(const ff_attn_leaves_t *L, float *s, size_t n, const float *const *vp, size_t dk, float *o,
                         float *lse) {
    float mx = -INFINITY, l = 0.0f;
    for (size_t j = 0; j < n; j++) mx = s[j] > mx || s[j] != s[j] ? s[j] : mx; /* a NaN score stays NaN */
    if (mx == -INFINITY) {
        for (size_t c = 0; c < dk; c++) o[c] = 0.0f;
        *lse = -INFINITY;
        return;
    }
    L->exp_sub_row(s, n, mx);
    for (size_t j = 0; j < n; j++) l += s[j];
    L->round_bf16(s, s, n);
    L->weighted_sum(o, s, vp, n, dk);
    const float inv = 1.0f / l;
    for (size_t c = 0; c < dk; c++) o[c] *= inv;
    *lse = mx + logf(l);
}

static void rows_unit(float *out, ff_attn_view_t so, float *lse, const float *q, ff_attn_view_t sq, const float *k,
                      ff_attn_view_t sk, const float *v, ff_attn_view_t sv, const uint8_t *kpm, key_map_t map,
                      const ff_attn_dims_t *d, const ff_attn_leaves_t *L, float *s, const float **kp,
                      const float **vp, float *rounded, float scale, size_t b, size_t h) {
    const size_t Tq = d->Tq, Tk = d->Tk, dk = d->dk;
    if (Tk == 0) { /* no key: out 0, lse -inf (and no pointer arithmetic on absent keys) */
        for (size_t i = 0; i < Tq; i++) {
            float *o = out + b * so.batch + h * so.head + i * so.row;
            for (size_t c = 0; c < dk; c++) o[c] = 0.0f;
            lse[(b * d->H + h) * Tq + i] = -INFINITY;
        }
        return;
    }
    for (size_t j = 0; j < Tk; j++) {
        const size_t slot = map.rows ? (size_t)map.rows[b * map.ld + j] : b;
        kp[j] = k + slot * sk.batch + h * sk.head + j * sk.row;
        vp[j] = v + slot * sv.batch + h * sv.head + j * sv.row;
    }
    if (d->bf16 && !d->kv_bf16)
        for (size_t j = 0; j < Tk; j++) {
            float *kr = rounded + dk + 2 * j * dk, *vr = kr + dk;
            L->round_bf16(kr, kp[j], dk), L->round_bf16(vr, vp[j], dk);
            kp[j] = kr, vp[j] = vr;
        }
    const float *qh = q + b * sq.batch + h * sq.head;
    const uint8_t *kb = kpm ? kpm + b * Tk : NULL;
    for (size_t i = 0; i < Tq; i++) {
        const size_t seen = d->causal ? (i + 1 < Tk ? i + 1 : Tk) : Tk; /* causal: keys j <= i */
        const float *qi = qh + i * sq.row;
        float *o = out + b * so.batch + h * so.head + i * so.row, *li = lse + (b * d->H + h) * Tq + i;
        if (d->bf16) L->round_bf16(rounded, qi, dk), qi = rounded;
        L->scores(s, qi, kp, seen, dk, scale);
        if (kb)
            for (size_t j = 0; j < seen; j++)
                if (kb[j]) s[j] = -INFINITY;
        if (d->bf16) {
            softmax_bf16(L, s, seen, vp, dk, o, li);
            continue;
        }
        *li = L->softmax_row(s, seen); /* s becomes P; a row seeing no key is 0 */
        L->weighted_sum(o, s, vp, seen, dk);
    }
}

int ff_attention_rows_forward(float *out, ff_attn_view_t so, float *lse, const float *q, ff_attn_view_t sq,
                              const float *k, ff_attn_view_t sk, const float *v, ff_attn_view_t sv,
                              const uint8_t *key_padding_mask, const int64_t *key_rows, size_t key_rows_ld,
                              const ff_attn_dims_t *d) {
    const size_t units = d->B * d->H;
    if (units == 0 || d->Tq == 0) return 0;
    const ff_attn_leaves_t *L = ff_attn_leaves();
    const float scale = (float)(1.0 / sqrt((double)d->dk)); /* in double, cast once: as the reference */
    const size_t nptr = 2 * (d->Tk + 1), nround = d->bf16 ? (d->kv_bf16 ? 1 : 2 * d->Tk + 1) * d->dk : 0;
    const size_t sbytes = nptr * sizeof(float *) + (d->Tk + 16 + nround) * sizeof(float);
    const key_map_t map = {key_rows, key_rows_ld};
    int err = 0;
    FF_OMP(parallel num_threads(ff_threads_for(units * d->Tq * (d->Tk + 1) * d->dk * 2, ROWS_GRAIN)))
    {
        const float **ptrs = ff_scratch(FF_SCRATCH_ATTN_FORWARD, sbytes);
        if (!ptrs) {
            FF_OMP(atomic write)
            err = -1;
        }
        FF_OMP(for schedule(static))
        for (size_t u = 0; u < units; u++)
            if (ptrs)
                rows_unit(out, so, lse, q, sq, k, sk, v, sv, key_padding_mask, map, d, L, (float *)(ptrs + nptr), ptrs,
                          ptrs + d->Tk + 1, (float *)(ptrs + nptr) + d->Tk + 16, scale, u / d->H, u % d->H);
    }
    return err;
}
