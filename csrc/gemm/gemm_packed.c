/* Products with a B packed once: C = act(alpha * A @ op(B) + beta * C + bias)
 * for the same op(B) many times (decoding multiplies each weight matrix by
 * a few rows every step, where packing B on every call cost as much as the
 * product). The packed layout is the driver's B panels for the whole matrix:
 * KC block pb (of k_block) after block pb - 1, each block ceil(n / NR)
 * panels of [kc][NR]. Blocking and kernel are the driver's, so every C
 * element is the same sum in the same order: the result is bitwise
 * ff_sgemm's (with bf16 != 0, bitwise ff_bgemm_batched's: its arch table,
 * panels of bf16 pairs or rounded floats). Threads take pieces (an MC row block times a chunk of panels)
 * from a shared counter; a thread packs its rows of A once for all of k and
 * keeps them while its pieces stay in that row block. One parallel region,
 * no barrier. */
#include <string.h>

#include "gemm/gemm_internal.h"
#include "runtime/runtime.h"
#include "runtime/scratch.h"

static inline size_t cdiv(size_t a, size_t b) { return (a + b - 1) / b; }
static inline size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Multiply-adds worth one more thread: one region, no barrier, so less than
 * the driver's GEMM_GRAIN. */
#define PACKED_GRAIN ((size_t)1 << 17)

static const ff_gemm_arch_t *arch(int bf16) { return bf16 ? ff_gemm_arch_bf16() : ff_gemm_arch(); }

size_t ff_gemm_packed_floats(int bf16, size_t n, size_t k) {
    const ff_gemm_arch_t *ar = arch(bf16);
    return cdiv(n, ar->nr) * ar->nr * ff_gemm_slots(ar, k);
}

size_t ff_gemm_packed_layout(int bf16, size_t k) {
    const ff_gemm_arch_t *ar = arch(bf16);
    return (size_t)(bf16 != 0) << 56 | (size_t)ar->kpack << 48 | (size_t)ar->nr << 40 | (size_t)ar->mr << 32 |
           (k ? ff_gemm_k_block(ar, k) : 0);
}

void ff_gemm_pack_b(int bf16, int trans_b, size_t n, size_t k, const float *B, size_t ldb, float *dst) {
    if (n == 0 || k == 0) return;
    const ff_gemm_arch_t *ar = arch(bf16);
    const size_t NR = ar->nr, KC = ff_gemm_k_block(ar, k), npan = cdiv(n, NR);
    const size_t units = cdiv(k, KC) * npan;
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(n * k, (size_t)1 << 16)))
    for (size_t u = 0; u < units; u++) {
        const size_t pc = u / npan * KC, q = u % npan, kc = min_sz(KC, k - pc), j = q * NR, w = min_sz(NR, n - j);
        float *d = dst + pc / ar->kpack * npan * NR + q * NR * ff_gemm_slots(ar, kc);
        if (trans_b) /* B is (n, k): op(B)(p, j) = B[j*ldb + p] */
            ar->pack_rows(d, B + j * ldb + pc, ldb, kc, w, NR);
        else
            ar->pack_cols(d, B + pc * ldb + j, ldb, kc, w, NR);
        ff_gemm_pad_panel(ar, d, kc, NR);
    }
}

/* Rows [i0, i0 + mc) of A (m, k) for all of k: block pb at apack + pc / kpack * mcr
 * (mcr = mc rounded up to MR), MR-row panels of [slots(kc)][MR] (or the
 * kernel's pack_a layout) inside. */
static void pack_a_rows(const ff_gemm_arch_t *ar, const float *A, size_t lda, size_t i0, size_t mc, size_t k,
                        size_t KC, float *apack) {
    const size_t MR = ar->mr, mcr = cdiv(mc, MR) * MR;
    for (size_t pc = 0; pc < k; pc += KC) {
        const size_t kc = min_sz(KC, k - pc);
        if (ar->pack_a) {
            ar->pack_a(apack + pc / ar->kpack * mcr, A + i0 * lda + pc, lda, 0, mc, kc);
            continue;
        }
        for (size_t ir = 0; ir < mc; ir += MR)
            ar->pack_rows(apack + pc / ar->kpack * mcr + ir * ff_gemm_slots(ar, kc), A + (i0 + ir) * lda + pc, lda,
                          kc, min_sz(MR, mc - ir), MR);
    }
}

int ff_gemm_packed(int bf16, size_t m, size_t n, size_t k, float alpha, const float *A, size_t lda,
                   const float *Bp, float beta, float *C, size_t ldc, const float *bias, ff_activation_t act) {
    if (m == 0 || n == 0) return 0;
    if (k == 0) return ff_sgemm(0, 0, m, n, 0, alpha, A, lda, Bp, n, beta, C, ldc, bias, act);
    const ff_gemm_arch_t *ar = arch(bf16);
    const size_t MR = ar->mr, NR = ar->nr, KC = ff_gemm_k_block(ar, k), MC = ff_gemm_m_block(ar, m);
    const size_t npan = cdiv(n, NR), nic = cdiv(m, MC);
    int nth = ff_threads_for(m * n * k, PACKED_GRAIN);
    /* chunks of panels: a few pieces per thread, so a slowed thread takes fewer */
    size_t nch = 1;
    while (nth > 1 && nic * nch < (size_t)(4 * nth) && nch * 2 <= npan) nch *= 2;
    const size_t pieces = nic * nch, afl = cdiv(MC, MR) * MR * ff_gemm_slots(ar, k);
    size_t next = 0;
    int failed = 0;
    FF_OMP(parallel num_threads(nth) if (nth > 1))
    {
        float *apack = ff_scratch(FF_SCRATCH_GEMM_A, afl * sizeof(float));
        if (!apack) {
            FF_OMP(atomic write)
            failed = 1;
        }
        size_t packed_ic = (size_t)-1;
        if (apack && ar->begin) ar->begin();
        for (size_t u; apack && (u = ff_gemm_take(&next, nth)) < pieces;) {
            const size_t ic = u / nch * MC, ch = u % nch, mc = min_sz(MC, m - ic), mcr = cdiv(mc, MR) * MR;
            if (ic != packed_ic) pack_a_rows(ar, A, lda, ic, mc, k, KC, apack), packed_ic = ic;
            for (size_t pc = 0; pc < k; pc += KC) {
                const size_t kc = min_sz(KC, k - pc), ks = ff_gemm_slots(ar, kc);
                const int last = pc + kc == k;
                ff_gemm_epi_t epi = {alpha, pc == 0 ? beta : 1.0f, pc > 0 || beta != 0.0f,
                                     last ? (int)act : FF_ACT_NONE, NULL};
                for (size_t q = npan * ch / nch; q < npan * (ch + 1) / nch; q++) {
                    const size_t j = q * NR, nr = min_sz(NR, n - j);
                    const float *bp = Bp + pc / ar->kpack * npan * NR + q * NR * ks;
                    epi.bias = last && bias ? bias + j : NULL;
                    for (size_t ir = 0; ir < mc; ir += MR)
                        ar->kernel(kc, apack + pc / ar->kpack * mcr + ir * ks, bp, C + (ic + ir) * ldc + j, ldc,
                                   min_sz(MR, mc - ir), nr, &epi);
                }
            }
        }
        if (apack && ar->end) ar->end();
    }
    return failed ? -1 : 0;
}
