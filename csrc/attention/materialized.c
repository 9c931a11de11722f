/* Materialised attention: the (Tq, Tk) score matrix of every head through
 * ff_sgemm_batched, a masked row softmax, and GEMMs back. Memory: one
 * (B, H, Tq, Tk) buffer forward, two backward (allocated per call: this is
 * the short-sequence path, where they are small). Rows are independent and
 * owned by one thread; GEMMs are deterministic; dropout reuses
 * ff_dropout_forward, whose flat index is exactly the (B, H, Tq, Tk) one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention/attn_internal.h"
#include "gemm/gemm.h"
#include "nn/dropout.h"
#include "runtime/runtime.h"

#define ROW_GRAIN 16384 /* score elements per thread worth starting it for */

/* Hide padded keys and, when causal, keys j > i in row i of a score matrix. */
static void mask_row(float *s, const uint8_t *kb, int causal, size_t i, size_t Tk) {
    if (kb)
        for (size_t j = 0; j < Tk; j++)
            if (kb[j]) s[j] = -INFINITY;
    if (causal)
        for (size_t j = i + 1; j < Tk; j++) s[j] = -INFINITY;
}

/* S[b, h] = scale * Q[b, h] K[b, h]^T for every head: (B, H, Tq, Tk). */
static int scores(float *S, const float *q, ff_attn_view_t sq, const float *k, ff_attn_view_t sk,
                  const ff_attn_dims_t *d, float scale) {
    const size_t TT = d->Tq * d->Tk;
    for (size_t b = 0; b < d->B; b++)
        if (ff_sgemm_batched(0, 1, d->Tq, d->Tk, d->dk, scale, q + b * sq.batch, sq.row, sq.head, k + b * sk.batch,
                             sk.row, sk.head, 0.0f, S + b * d->H * TT, d->Tk, TT, NULL, FF_ACT_NONE, d->H))
            return -1;
    return 0;
}

int ff_attention_materialized_forward(float *out, ff_attn_view_t so, float *lse, const float *q, ff_attn_view_t sq,
                                      const float *k, ff_attn_view_t sk, const float *v, ff_attn_view_t sv,
                                      const uint8_t *key_padding_mask, const ff_attn_dims_t *d) {
    const size_t B = d->B, H = d->H, Tq = d->Tq, Tk = d->Tk, dk = d->dk, rows = B * H * Tq, TT = Tq * Tk;
    if (rows == 0) return 0;
    if (Tk == 0) { /* no key at all: every query sees nothing */
        for (size_t r = 0; r < rows; r++) {
            size_t bh = r / Tq, i = r % Tq;
            memset(out + bh / H * so.batch + bh % H * so.head + i * so.row, 0, dk * sizeof(float));
            lse[r] = -INFINITY;
        }
        return 0;
    }
    float *S = malloc(B * H * TT * sizeof(float));
    if (!S) return -1;
    const ff_attn_leaves_t *L = ff_attn_leaves();
    int rc = scores(S, q, sq, k, sk, d, (float)(1.0 / sqrt((double)dk)));
    if (rc == 0) {
        FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(rows * Tk, ROW_GRAIN)))
        for (size_t r = 0; r < rows; r++) {
            float *s = S + r * Tk;
            size_t b = r / (H * Tq);
            mask_row(s, key_padding_mask ? key_padding_mask + b * Tk : NULL, d->causal, r % Tq, Tk);
            lse[r] = L->softmax_row(s, Tk);
        }
        if (d->dropout_p > 0.0) ff_dropout_forward(S, S, B * H * TT, d->dropout_p, d->seed, d->step, d->site);
        for (size_t b = 0; b < B && rc == 0; b++)
            rc = ff_sgemm_batched(0, 0, Tq, dk, Tk, 1.0f, S + b * H * TT, Tk, TT, v + b * sv.batch, sv.row, sv.head,
                                  0.0f, out + b * so.batch, so.row, so.head, NULL, FF_ACT_NONE, H);
    }
    free(S);
    return rc;
}

int ff_attention_materialized_backward(float *dq, ff_attn_view_t sdq, float *dk, ff_attn_view_t sdk, float *dv,
                                       ff_attn_view_t sdv, const float *dout, ff_attn_view_t sdo, const float *q,
                                       ff_attn_view_t sq, const float *k, ff_attn_view_t sk, const float *v,
                                       ff_attn_view_t sv, const float *out, ff_attn_view_t so, const float *lse,
                                       const uint8_t *key_padding_mask, const ff_attn_dims_t *d) {
    const size_t B = d->B, H = d->H, Tq = d->Tq, Tk = d->Tk, dkk = d->dk, rows = B * H * Tq, TT = Tq * Tk;
    if (B * H == 0) return 0;
    if (Tq == 0 || Tk == 0) { /* nothing flows: all gradients 0 */
        for (size_t bh = 0; bh < B * H; bh++) {
            size_t b = bh / H, h = bh % H;
            for (size_t i = 0; i < Tq; i++) memset(dq + b * sdq.batch + h * sdq.head + i * sdq.row, 0, dkk * 4);
            for (size_t j = 0; j < Tk; j++) {
                memset(dk + b * sdk.batch + h * sdk.head + j * sdk.row, 0, dkk * 4);
                memset(dv + b * sdv.batch + h * sdv.head + j * sdv.row, 0, dkk * 4);
            }
        }
        return 0;
    }
    float *P = malloc(B * H * TT * sizeof(float)), *G = malloc(B * H * TT * sizeof(float));
    int rc = (P && G) ? 0 : -1;
    const ff_attn_leaves_t *L = ff_attn_leaves();
    const float scale = (float)(1.0 / sqrt((double)dkk));
    const int drop = d->dropout_p > 0.0;
    int nt = ff_threads_for(rows * Tk, ROW_GRAIN);
    (void)nt;
    if (rc == 0) rc = scores(P, q, sq, k, sk, d, scale);
    if (rc == 0) {
        /* P = exp(S - lse), 0 where hidden and on rows with lse = -inf */
        FF_OMP(parallel for schedule(static) num_threads(nt))
        for (size_t r = 0; r < rows; r++) {
            float *s = P + r * Tk;
            size_t b = r / (H * Tq);
            mask_row(s, key_padding_mask ? key_padding_mask + b * Tk : NULL, d->causal, r % Tq, Tk);
            L->exp_sub_row(s, Tk, lse[r] == -INFINITY ? INFINITY : lse[r]);
        }
        /* dV = Pd^T dO, Pd = dropout(P) (in G for now) */
        const float *Pd = P;
        if (drop) {
            ff_dropout_forward(G, P, B * H * TT, d->dropout_p, d->seed, d->step, d->site);
            Pd = G;
        }
        for (size_t b = 0; b < B && rc == 0; b++)
            rc = ff_sgemm_batched(1, 0, Tk, dkk, Tq, 1.0f, Pd + b * H * TT, Tk, TT, dout + b * sdo.batch, sdo.row,
                                  sdo.head, 0.0f, dv + b * sdv.batch, sdv.row, sdv.head, NULL, FF_ACT_NONE, H);
        /* G = dP = dO V^T, through the same dropout mask */
        for (size_t b = 0; b < B && rc == 0; b++)
            rc = ff_sgemm_batched(0, 1, Tq, Tk, dkk, 1.0f, dout + b * sdo.batch, sdo.row, sdo.head, v + b * sv.batch,
                                  sv.row, sv.head, 0.0f, G + b * H * TT, Tk, TT, NULL, FF_ACT_NONE, H);
    }
    if (rc == 0) {
        if (drop) ff_dropout_forward(G, G, B * H * TT, d->dropout_p, d->seed, d->step, d->site);
        /* dS = P * (dP - D), D = rowsum(dO * O) */
        FF_OMP(parallel for schedule(static) num_threads(nt))
        for (size_t r = 0; r < rows; r++) {
            size_t bh = r / Tq, i = r % Tq, b = bh / H, h = bh % H;
            float D = L->dot(dout + b * sdo.batch + h * sdo.head + i * sdo.row,
                             out + b * so.batch + h * so.head + i * so.row, dkk);
            L->dsoftmax_row(G + r * Tk, P + r * Tk, Tk, D);
        }
        for (size_t b = 0; b < B && rc == 0; b++) {
            rc = ff_sgemm_batched(0, 0, Tq, dkk, Tk, scale, G + b * H * TT, Tk, TT, k + b * sk.batch, sk.row,
                                  sk.head, 0.0f, dq + b * sdq.batch, sdq.row, sdq.head, NULL, FF_ACT_NONE, H);
            if (rc == 0)
                rc = ff_sgemm_batched(1, 0, Tk, dkk, Tq, scale, G + b * H * TT, Tk, TT, q + b * sq.batch, sq.row,
                                      sq.head, 0.0f, dk + b * sdk.batch, sdk.row, sdk.head, NULL, FF_ACT_NONE, H);
        }
    }
    free(P);
    free(G);
    return rc;
}
