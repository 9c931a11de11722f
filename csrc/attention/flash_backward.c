/* Fused attention backward. One work unit per (batch, head): the unit owns
 * that head's dQ, dK and dV, so no two threads ever add into one element.
 * Per key block (outer) and query block (inner), with scores held as
 * S^T (keys x queries):
 *
 *   P^T  = exp(scale K Q^T - lse)          recomputed, never stored
 *   dP^T = V dO^T
 *   dV  += Pd^T-free form: (P^T * keep) dO        (keep = dropout factors)
 *   dS^T = P^T * (dP^T * keep - D),  D = rowsum(dO * O)
 *   dK  += dS^T Q,  dQ += dS K            (scale applied once at the end)
 *
 * Determinism: each dQ row is summed over key blocks in order, each dK/dV row
 * over query blocks in order, inside one unit, whatever thread runs it. */
#include <math.h>
#include <string.h>

#include "attention/attn_internal.h"
#include "gemm/gemm.h"
#include "gemm/gemm_internal.h" /* ff_stored_at: q, k, v as floats or bf16 values */
#include "runtime/scratch.h"
#include "runtime/runtime.h"

#define BQ FF_ATTN_BQ
#define BK FF_ATTN_BK

static inline size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static int all_padded(const uint8_t *kpm, size_t k0, size_t nk) {
    if (!kpm) return 0;
    for (size_t j = 0; j < nk; j++)
        if (!kpm[k0 + j]) return 0;
    return 1;
}

static void zero_rows(float *x, size_t ld, size_t rows, size_t n) {
    for (size_t i = 0; i < rows; i++) memset(x + i * ld, 0, n * sizeof(float));
}

typedef struct {
    float *Qt, *dOt, *D, *Lm, *ST, *dPT, *PdT, *F, *sc, *Qs;
    uint32_t *w;
    size_t ldq; /* Tq rounded up to BQ */
} bwd_ws_t;

/* Qt and dOt hold Q^T and dO^T as Tq/BQ panels of (dk, BQ), panel qb at
 * qb*dk*BQ, zero past Tq. Panels rather than one (dk, Tq) matrix: a row
 * stride of Tq floats (4 KiB at Tq = 1024) maps a panel's rows to a few L1
 * sets, and the products that stream it would miss L1 throughout. Qs (a Q
 * block's bf16 values widened, for its transpose) only with d->bf16_inputs. */
static size_t bwd_ws_size(const ff_attn_dims_t *d) {
    const size_t ldq = (d->Tq + BQ - 1) / BQ * BQ, dk = d->dk;
    return 2 * dk * ldq + 2 * (ldq + BQ) + 4 * BK * BQ + BK + BK + 64 + (d->bf16_inputs ? BQ * dk : 0);
}

static bwd_ws_t bwd_ws(float *base, size_t Tq, size_t dk) {
    bwd_ws_t w;
    w.ldq = (Tq + BQ - 1) / BQ * BQ;
    w.Qt = base;
    w.dOt = w.Qt + dk * w.ldq;
    w.D = w.dOt + dk * w.ldq;
    w.Lm = w.D + w.ldq + BQ;
    w.ST = w.Lm + w.ldq + BQ;
    w.dPT = w.ST + BK * BQ;
    w.PdT = w.dPT + BK * BQ;
    w.F = w.PdT + BK * BQ;
    w.sc = w.F + BK * BQ;
    w.w = (uint32_t *)(w.sc + BK);
    w.Qs = w.sc + BK + BK + 64;
    return w;
}

typedef struct {
    float *dq, *dk, *dv;
    ff_attn_view_t sdq, sdk, sdv, sdo, sq, sk, sv, so;
    const float *dout, *out, *lse;
    const void *q, *k, *v;
    const uint8_t *kpm;
    const ff_attn_dims_t *d;
    const ff_attn_leaves_t *L;
    float scale;
} bwd_args_t;

static void backward_head(const bwd_args_t *a, bwd_ws_t w, size_t b, size_t h) {
    const ff_attn_dims_t *d = a->d;
    const ff_attn_leaves_t *L = a->L;
    const size_t Tq = d->Tq, Tk = d->Tk, dk = d->dk, ldq = w.ldq;
    /* offsets into the flash inputs, and their storage as A or B of a product */
    const size_t qh = b * a->sq.batch + h * a->sq.head, kh = b * a->sk.batch + h * a->sk.head,
                 vh = b * a->sv.batch + h * a->sv.head;
    const int bf = d->bf16_inputs, a_in = bf ? FF_GEMM_A_BF16 : 0, b_in = bf ? FF_GEMM_B_BF16 : 0;
    const float *doh = a->dout + b * a->sdo.batch + h * a->sdo.head;
    const float *oh = a->out + b * a->so.batch + h * a->so.head;
    const float *lh = a->lse + (b * d->H + h) * Tq;
    float *dqh = a->dq + b * a->sdq.batch + h * a->sdq.head;
    float *dkh = a->dk + b * a->sdk.batch + h * a->sdk.head;
    float *dvh = a->dv + b * a->sdv.batch + h * a->sdv.head;
    const uint8_t *kb = a->kpm ? a->kpm + b * Tk : NULL;

    /* Q^T and dO^T of the head in (dk, BQ) panels, zero past Tq */
    for (size_t q0 = 0; q0 < Tq; q0 += BQ) {
        const size_t nq = min_sz(BQ, Tq - q0);
        float *qt = w.Qt + q0 * dk, *dot = w.dOt + q0 * dk;
        ff_attn_transpose_input(L, qt, BQ, ff_stored_at(a->q, bf, qh + q0 * a->sq.row), a->sq.row, nq, dk, d, w.Qs);
        L->transpose(dot, BQ, doh + q0 * a->sdo.row, a->sdo.row, nq, dk);
        for (size_t p = 0; nq < BQ && p < dk; p++) {
            memset(qt + p * BQ + nq, 0, (BQ - nq) * sizeof(float));
            memset(dot + p * BQ + nq, 0, (BQ - nq) * sizeof(float));
        }
    }
    /* D = rowsum(dO * O); lse = -inf (a query with no key) becomes +inf so its P is 0 */
    for (size_t i = 0; i < Tq; i++) {
        w.D[i] = L->dot(doh + i * a->sdo.row, oh + i * a->so.row, dk);
        w.Lm[i] = lh[i] == -INFINITY ? INFINITY : lh[i];
    }
    for (size_t i = Tq; i < ldq + BQ; i++) {
        w.D[i] = 0.0f;
        w.Lm[i] = INFINITY;
    }
    for (size_t r = 0; r < BK; r++) w.sc[r] = a->scale;

    zero_rows(dqh, a->sdq.row, Tq, dk);
    zero_rows(dkh, a->sdk.row, Tk, dk);
    zero_rows(dvh, a->sdv.row, Tk, dk);
    const int drop = d->dropout_p > 0.0;

    for (size_t k0 = 0; k0 < Tk; k0 += BK) {
        const size_t nk = min_sz(BK, Tk - k0);
        if (all_padded(kb, k0, nk)) continue; /* their P is 0: dK = dV = 0 */
        const void *kp = ff_stored_at(a->k, bf, kh + k0 * a->sk.row), *vp = ff_stored_at(a->v, bf, vh + k0 * a->sv.row);
        float *dkp = dkh + k0 * a->sdk.row, *dvp = dvh + k0 * a->sdv.row;
        /* causal: queries before k0 see none of these keys */
        const size_t qstart = d->causal ? k0 / BQ * BQ : 0;
        for (size_t q0 = qstart; q0 < Tq; q0 += BQ) {
            const size_t nq = min_sz(BQ, Tq - q0), ncol = min_sz(BQ, round16(nq));
            L->gemm(w.ST, BQ, kp, a->sk.row, 1, w.Qt + q0 * dk, BQ, nk, ncol, dk, a->scale, 0, a_in);
            if (kb || (d->causal && k0 + nk - 1 > q0)) ff_attn_mask_block(w.ST, BQ, kb, d->causal, q0, nq, k0, nk);
            L->exp_sub_cols(w.ST, BQ, w.Lm + q0, nk, nq);
            L->gemm(w.dPT, BQ, vp, a->sv.row, 1, w.dOt + q0 * dk, BQ, nk, ncol, dk, 1.0f, 0, a_in);
            const float *Pd = w.ST;
            if (drop) {
                ff_attn_keep_block(w.F, BQ, w.w, L, d, b * d->H + h, q0, nq, k0, nk);
                for (size_t r = 0; r < nk; r++)
                    for (size_t c = 0; c < nq; c++) {
                        w.PdT[r * BQ + c] = w.ST[r * BQ + c] * w.F[r * BQ + c];
                        w.dPT[r * BQ + c] *= w.F[r * BQ + c];
                    }
                Pd = w.PdT;
            }
            const float *dop = doh + q0 * a->sdo.row;
            const void *qp = ff_stored_at(a->q, bf, qh + q0 * a->sq.row);
            /* dV_blk += Pd^T-as-stored (nk, nq) @ dO_blk (nq, dk) */
            L->gemm(dvp, a->sdv.row, Pd, BQ, 1, dop, a->sdo.row, nk, dk, nq, 1.0f, 1, 0);
            L->dsoftmax_cols(w.dPT, w.ST, BQ, w.D + q0, nk, nq);
            /* dK_blk += dS^T (nk, nq) @ Q_blk (nq, dk) */
            L->gemm(dkp, a->sdk.row, w.dPT, BQ, 1, qp, a->sq.row, nk, dk, nq, 1.0f, 1, b_in);
            /* dQ_blk += dS (nq, nk) @ K_blk (nk, dk); dS's element (i, j) is dS^T[j*BQ + i] */
            L->gemm(dqh + q0 * a->sdq.row, a->sdq.row, w.dPT, 1, BQ, kp, a->sk.row, nq, dk, nk, 1.0f, 1, b_in);
        }
        L->scale_rows(dkp, a->sdk.row, w.sc, nk, dk);
    }
    for (size_t i0 = 0; i0 < Tq; i0 += BK) L->scale_rows(dqh + i0 * a->sdq.row, a->sdq.row, w.sc, min_sz(BK, Tq - i0), dk);
}

int ff_attention_flash_backward(float *dq, ff_attn_view_t sdq, float *dk, ff_attn_view_t sdk, float *dv,
                                ff_attn_view_t sdv, const float *dout, ff_attn_view_t sdo, const void *q,
                                ff_attn_view_t sq, const void *k, ff_attn_view_t sk, const void *v,
                                ff_attn_view_t sv, const float *out, ff_attn_view_t so, const float *lse,
                                const uint8_t *key_padding_mask, const ff_attn_dims_t *d) {
    const size_t units = d->B * d->H;
    if (units == 0) return 0;
    ff_attn_leaves_t bf16_leaves;
    bwd_args_t a = {dq,  dk,  dv,  sdq, sdk, sdv, sdo, sq, sk, sv, so, dout, out, lse, q, k, v, key_padding_mask, d,
                    ff_attn_leaves_for(d, &bf16_leaves), (float)(1.0 / sqrt((double)d->dk))};
    const size_t wsz = bwd_ws_size(d);
    int err = 0;
    FF_OMP(parallel num_threads(ff_threads_for(units, 1)))
    {
        float *base = ff_scratch(FF_SCRATCH_ATTN_BACKWARD, wsz * sizeof(float));
        if (!base) {
            FF_OMP(atomic write)
            err = -1;
        }
        FF_OMP(for schedule(dynamic, 1))
        for (size_t u = 0; u < units; u++) {
            if (!base) continue;
            backward_head(&a, bwd_ws(base, d->Tq, d->dk), u / d->H, u % d->H);
        }
    }
    return err;
}
