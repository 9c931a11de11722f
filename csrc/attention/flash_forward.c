/* Fused attention forward: one work unit per (batch, head, query block),
 * streaming over key blocks with an online softmax. Memory: per thread a few
 * (BK x BQ) and (BQ x dk) blocks; only out and lse are written.
 *
 * Determinism: a unit's arithmetic depends on the unit alone (its block
 * boundaries are fixed, its keys visited in order), never on the thread that
 * runs it, so any schedule gives the same bits. */
#include <math.h>
#include <string.h>

#include "attention/attn_internal.h"
#include "gemm/gemm.h"
#include "gemm/gemm_internal.h" /* ff_stored_at: q, k, v as floats or bf16 values */
#include "runtime/scratch.h"
#include "runtime/runtime.h"

#define BQ FF_ATTN_BQ
#define BK FF_ATTN_BK_FWD

static inline size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* 1 when every key in [k0, k0 + nk) is padding. */
static int all_padded(const uint8_t *kpm, size_t k0, size_t nk) {
    if (!kpm) return 0;
    for (size_t j = 0; j < nk; j++)
        if (!kpm[k0 + j]) return 0;
    return 1;
}

typedef struct {
    float *Qt, *ST, *O, *F, *m, *l, *corr, *Qs;
    uint32_t *w;
} fwd_ws_t;

/* Floats of the per-thread workspace, carved as fwd_ws_t; Qs (the Q block's
 * bf16 values widened) only with d->bf16_inputs. */
static size_t fwd_ws_size(const ff_attn_dims_t *d) {
    const size_t dk = d->dk;
    return dk * BQ + BK * BQ + BQ * dk + BK * BQ + 3 * BQ + BK + 64 + (d->bf16_inputs ? BQ * dk : 0);
}

static fwd_ws_t fwd_ws(float *base, size_t dk) {
    fwd_ws_t w;
    w.Qt = base;
    w.ST = w.Qt + dk * BQ;
    w.O = w.ST + BK * BQ;
    w.F = w.O + BQ * dk;
    w.m = w.F + BK * BQ;
    w.l = w.m + BQ;
    w.corr = w.l + BQ;
    w.w = (uint32_t *)(w.corr + BQ);
    w.Qs = w.corr + BQ + BK + 64;
    return w;
}

static void forward_unit(float *out, ff_attn_view_t so, float *lse, const void *q, ff_attn_view_t sq,
                         const void *k, ff_attn_view_t sk, const void *v, ff_attn_view_t sv, const uint8_t *kpm,
                         const ff_attn_dims_t *d, const ff_attn_leaves_t *L, fwd_ws_t w, float scale, size_t b,
                         size_t h, size_t q0) {
    const size_t Tk = d->Tk, dk = d->dk;
    const size_t nq = min_sz(BQ, d->Tq - q0), ncol = min_sz(BQ, round16(nq));
    const size_t kh = b * sk.batch + h * sk.head, vh = b * sv.batch + h * sv.head; /* offsets */
    const uint8_t *kb = kpm ? kpm + b * Tk : NULL;
    const int bf = d->bf16_inputs; /* q, k, v are bf16 values: K is A, V is B of a bf16 product */
    const int k_in = bf ? FF_GEMM_A_BF16 : 0, v_in = bf ? FF_GEMM_B_BF16 : 0;

    /* Q block transposed, (dk, BQ); columns past nq are 0 so padded lanes stay finite */
    ff_attn_transpose_input(L, w.Qt, BQ, ff_stored_at(q, bf, b * sq.batch + h * sq.head + q0 * sq.row), sq.row, nq, dk,
                            d, w.Qs);
    if (nq < BQ)
        for (size_t p = 0; p < dk; p++) memset(w.Qt + p * BQ + nq, 0, (BQ - nq) * sizeof(float));
    memset(w.O, 0, nq * dk * sizeof(float));
    for (size_t c = 0; c < BQ; c++) {
        w.m[c] = -INFINITY;
        w.l[c] = 0.0f;
    }

    /* causal: keys past the block's last query are hidden from all of it */
    const size_t kend = d->causal ? min_sz(Tk, q0 + nq) : Tk;
    int first = 1;
    for (size_t k0 = 0; k0 < kend; k0 += BK) {
        const size_t nk = min_sz(BK, kend - k0);
        if (all_padded(kb, k0, nk)) continue; /* contributes exactly 0 */
        /* S^T = scale * K_blk Q_blk^T, (nk, ncol) */
        L->gemm(w.ST, BQ, ff_stored_at(k, bf, kh + k0 * sk.row), sk.row, 1, w.Qt, BQ, nk, ncol, dk, scale, 0, k_in);
        if (kb || (d->causal && k0 + nk - 1 > q0)) ff_attn_mask_block(w.ST, BQ, kb, d->causal, q0, nq, k0, nk);
        L->softmax_cols(w.ST, BQ, w.m, w.l, w.corr, nk, nq);
        if (!first) {
            int ones = 1;
            for (size_t c = 0; c < nq; c++) ones &= w.corr[c] == 1.0f;
            if (!ones) L->scale_rows(w.O, dk, w.corr, nq, dk);
        }
        first = 0;
        if (d->dropout_p > 0.0) {
            ff_attn_keep_block(w.F, BQ, w.w, L, d, b * d->H + h, q0, nq, k0, nk);
            for (size_t r = 0; r < nk; r++)
                for (size_t c = 0; c < nq; c++) w.ST[r * BQ + c] *= w.F[r * BQ + c];
        }
        /* O += P V_blk with P = (S^T)^T: A's element (i, j) is ST[j*BQ + i] */
        L->gemm(w.O, dk, w.ST, 1, BQ, ff_stored_at(v, bf, vh + k0 * sv.row), sv.row, nq, dk, nk, 1.0f, 1, v_in);
    }

    float *op = out + b * so.batch + h * so.head + q0 * so.row;
    float *lp = lse + (b * d->H + h) * d->Tq + q0;
    for (size_t i = 0; i < nq; i++) {
        float li = w.l[i];
        float inv = li > 0.0f ? 1.0f / li : 0.0f;
        for (size_t j = 0; j < dk; j++) op[i * so.row + j] = w.O[i * dk + j] * inv;
        lp[i] = li > 0.0f || li != li ? w.m[i] + logf(li) : -INFINITY; /* NaN stays NaN: not "no key seen" */
    }
}

int ff_attention_flash_forward(float *out, ff_attn_view_t so, float *lse, const void *q, ff_attn_view_t sq,
                               const void *k, ff_attn_view_t sk, const void *v, ff_attn_view_t sv,
                               const uint8_t *key_padding_mask, const ff_attn_dims_t *d) {
    const size_t nqb = (d->Tq + BQ - 1) / BQ, units = d->B * d->H * nqb;
    if (units == 0) return 0;
    ff_attn_leaves_t bf16_leaves;
    const ff_attn_leaves_t *L = ff_attn_leaves_for(d, &bf16_leaves);
    const float scale = (float)(1.0 / sqrt((double)d->dk)); /* in double, cast once: as the reference */
    const size_t wsz = fwd_ws_size(d);
    int err = 0;
    FF_OMP(parallel num_threads(ff_threads_for(units, 1)))
    {
        float *base = ff_scratch(FF_SCRATCH_ATTN_FORWARD, wsz * sizeof(float));
        if (!base) {
            FF_OMP(atomic write)
            err = -1;
        }
        /* dynamic: causal units differ in cost; the result does not depend on who runs a unit */
        FF_OMP(for schedule(dynamic, 1))
        for (size_t u = 0; u < units; u++) {
            if (!base) continue;
            size_t qb = u % nqb, bh = u / nqb;
            forward_unit(out, so, lse, q, sq, k, sk, v, sv, key_padding_mask, d, L, fwd_ws(base, d->dk), scale,
                         bh / d->H, bh % d->H, qb * BQ);
        }
    }
    return err;
}
