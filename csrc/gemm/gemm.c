/* The GEMM driver: kernel choice, cache blocking, packing order, threads.
 *
 * Loop nest (Goto/BLIS), for one product:
 *   jc over n in NC blocks        B block (kc x nc) packed once, shared, in L3
 *    pc over k in KC blocks       never split across threads
 *     [pieces = MC row block x chunk of NR panels, taken by free threads]
 *     ic over m in MC blocks      A block (mc x kc) packed per thread, in L2
 *      jr over NR panels          B micro-panel (kc x NR) in L1/L2
 *       ir over MR panels         micro-kernel: MR x NR tile in registers
 * Every C element is summed over pc blocks in order, each block by one kernel
 * call, and the blocking depends on the shape and the kernel only, so the
 * thread split changes who computes a tile, never its bits.
 * A batch of small products goes whole products per thread instead (one
 * parallel region either way). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm/gemm_internal.h"
#include "runtime/runtime.h"
#include "runtime/scratch.h"
#include "runtime/simd_target.h"

/* Blocking per kernel, measured on Zen 5 (48 KiB L1d, 1 MiB L2 per core,
 * 32 MiB L3), 2048^3 single-threaded:
 * - KC = 512: C is re-read and re-written once per KC block, and at KC = 256
 *   that traffic cost ~5%; the B micro-panel (KC x NR) then outgrows L1 for the
 *   12x32 kernel, but streaming it from L2 costs less (236-241 GFLOP/s for KC
 *   384..768 against 228-232 at 256; 185-210 at 192). 512 also divides the
 *   Transformer's k (512, 1536, 2048, 4096) into equal blocks.
 * - MC = 144 (A block 288 KiB at KC = 512, in L2): 72..192 measured within
 *   noise; 144 gives m = 4096 some 29 pieces to share between threads. MC is
 *   the cap: m is cut into equal blocks of at most MC rows (m_block).
 * - NC = 4096: the shared B block (8 MiB) stays in L3; 1024..4096 measured the same.
 * AVX2 6x16: KC 256..512 within 2% of each other (~93% of the AVX2 FMA peak). */
static ff_gemm_arch_t g_arch_generic = {.name = "generic", .kpack = 1, .mr = FF_GEMM_GENERIC_MR,
                                        .nr = FF_GEMM_GENERIC_NR, .mc = 144, .kc = 256, .nc = 4096,
                                        .kernel = ff_gemm_kernel_generic, .pack_rows = ff_gemm_pack_rows,
                                        .pack_cols = ff_gemm_pack_cols};
#if FF_X86
static ff_gemm_arch_t g_arch_avx2 = {.name = "avx2", .kpack = 1, .mr = FF_GEMM_AVX2_MR, .nr = FF_GEMM_AVX2_NR,
                                     .mc = 144, .kc = 512, .nc = 4080, .kernel = ff_gemm_kernel_avx2,
                                     .pack_rows = ff_gemm_pack_rows_avx2, .pack_cols = ff_gemm_pack_cols_avx2};
static ff_gemm_arch_t g_arch_avx512 = {.name = "avx512", .kpack = 1, .mr = FF_GEMM_AVX512_MR,
                                       .nr = FF_GEMM_AVX512_NR, .mc = 144, .kc = 512, .nc = 4096,
                                       .kernel = ff_gemm_kernel_avx512, .pack_rows = ff_gemm_pack_rows_avx512,
                                       .pack_cols = ff_gemm_pack_cols_avx512};
#endif

ff_gemm_arch_t *ff_gemm_arch(void) {
#if FF_X86
    ff_simd_t s = ff_simd_active();
    if (s >= FF_SIMD_AVX512) return &g_arch_avx512;
    if (s >= FF_SIMD_AVX2) return &g_arch_avx2;
#endif
    return &g_arch_generic;
}

/* Tuning hook (benchmarks only): change the active kernel's blocking (bf16:
 * the bf16 products'); 0 keeps a value. mc is rounded to a multiple of MR,
 * kc to one of 8 and the kernel's kgrain, nc to one of NR. */
void ff_gemm_set_blocking(int bf16, size_t mc, size_t kc, size_t nc) {
    ff_gemm_arch_t *ar = bf16 ? (ff_gemm_arch_t *)ff_gemm_arch_bf16() : ff_gemm_arch();
    if (mc) ar->mc = (mc + ar->mr - 1) / ar->mr * ar->mr;
    if (kc) ar->kc = ff_gemm_depth(ar, (kc + 7) & ~(size_t)7);
    if (nc) ar->nc = (nc + ar->nr - 1) / ar->nr * ar->nr;
}

void ff_gemm_get_blocking(int bf16, size_t out[5]) {
    const ff_gemm_arch_t *ar = bf16 ? ff_gemm_arch_bf16() : ff_gemm_arch();
    out[0] = ar->mr, out[1] = ar->nr, out[2] = ar->mc, out[3] = ar->kc, out[4] = ar->nc;
}

/* ---- per-thread pack buffers ------------------------------------------- */

/* From the thread-local scratch (runtime/scratch.h): two callers never share
 * one, and no call mallocs once warm. */
static float *pack_buffer(int slot, size_t nfloats) { return ff_scratch(slot, nfloats * sizeof(float)); }

/* ---- one product --------------------------------------------------------- */

typedef struct {
    int ta, tb;
    int a16, b16, c16; /* A, B, C hold bf16 values (uint16) instead of floats */
    size_t m, n, k;
    float alpha, beta;
    const void *A, *B;
    size_t lda, ldb, ldc;
    void *C;
    const float *bias;
    int act;
} problem_t;

static inline size_t cdiv(size_t a, size_t b) { return (a + b - 1) / b; }
static inline size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Element (r, c) of a matrix stored as floats, or as bf16 values (bf16). */
static inline const void *element(const void *X, int bf16, size_t ld, size_t r, size_t c) {
    return ff_stored_at(X, bf16, r * ld + c);
}

/* KC blocks of near-equal size (a function of k only): k = 300 runs 150 + 150,
 * not 256 + 44. Rounded up to 8 so panels stay aligned (and to the kernel's
 * kgrain, so only the last block is padded). */
size_t ff_gemm_k_block(const ff_gemm_arch_t *ar, size_t k) {
    size_t nb = cdiv(k, ar->kc);
    size_t kc = cdiv(k, nb);
    kc = ff_gemm_depth(ar, (kc + 7) & ~(size_t)7);
    return kc < ar->kc ? kc : ar->kc;
}

/* Row blocks of near-equal size (a function of m only): m = 1024 runs 7 x 132
 * + 100 rows, not 7 x 144 + 16, so the ic pieces cost about the same and threads finish
 * together. Only the split into pieces changes: the bits of C do not. */
size_t ff_gemm_m_block(const ff_gemm_arch_t *ar, size_t m) {
    size_t mc = cdiv(m, cdiv(m, ar->mc));
    return cdiv(mc, ar->mr) * ar->mr;
}

/* A column-block pack walks k in steps of PACK_KT rows, each row a few whole
 * cache lines, and asks for the rows PACK_AHEAD steps on in advance. */
#define PACK_KT 8
#define PACK_AHEAD 16

/* Where the packers read a block: its origin as stored, or (for bf16 values
 * on an arch without bf16 packers) its values widened into a stage. */
typedef struct {
    const void *p;
    size_t ld;
    int bf16;
} source_t;

/* The rows x cols block at (r, c) of X (floats, or bf16 values when bf16). */
static source_t block(const ff_gemm_arch_t *ar, const void *X, int bf16, size_t ld, size_t r, size_t c, size_t rows,
                      size_t cols, float *stage) {
    source_t s = {element(X, bf16, ld, r, c), ld, bf16};
    if (bf16 && !ar->pack_rows_bf16) s = (source_t){ff_bf16_widen_rows(stage, s.p, ld, rows, cols), cols, 0};
    return s;
}

static inline const void *source_at(source_t s, size_t r, size_t c) { return element(s.p, s.bf16, s.ld, r, c); }

/* The arch's pack_rows / pack_cols from element (r, c) of the source. */
static void pack_rows_at(const ff_gemm_arch_t *ar, float *dst, source_t s, size_t r, size_t c, size_t kc, size_t w,
                         size_t W) {
    if (s.bf16) ar->pack_rows_bf16(dst, source_at(s, r, c), s.ld, kc, w, W);
    else ar->pack_rows(dst, source_at(s, r, c), s.ld, kc, w, W);
}
static void pack_cols_at(const ff_gemm_arch_t *ar, float *dst, source_t s, size_t r, size_t c, size_t kc, size_t w,
                         size_t W) {
    if (s.bf16) ar->pack_cols_bf16(dst, source_at(s, r, c), s.ld, kc, w, W);
    else ar->pack_cols(dst, source_at(s, r, c), s.ld, kc, w, W);
}

/* `width` columns of a (k, *) matrix, columns [0, width) of rows [0, kc) of
 * the source, into ceil(width / W) W-wide panels of pack_cols layout, panel
 * q at dst + q*W*kc. Panel by panel over the whole kc, each pass walks kc
 * rows that sit a page apart at ld = 1024, 2048 floats: the L1/L2 sets alias
 * (adjacent panels then re-fetch the lines they share from L3) and the
 * hardware prefetchers stop at page boundaries. Row steps across the whole
 * block, with the rows prefetched by hand, pack 2-3x faster (0.3 -> 0.1 ns per
 * float at ld = 1024 from L3, 0.37 -> 0.18 from DRAM): in dW = dY^T X with
 * m, n = 256..1024 that was 10-20% of the product's time. */
static void pack_cols_block(const ff_gemm_arch_t *ar, float *dst, source_t s, size_t kc, size_t width, size_t W) {
    const size_t ks = ff_gemm_slots(ar, kc); /* a panel's slots along k */
    const size_t row_bytes = s.ld * (s.bf16 ? sizeof(uint16_t) : sizeof(float));
    const size_t bytes = width * (s.bf16 ? sizeof(uint16_t) : sizeof(float));
    if (row_bytes < 1024) { /* the prefetchers keep up, and short steps only cost calls */
        for (size_t j = 0; j < width; j += W) pack_cols_at(ar, dst + j * ks, s, 0, j, kc, min_sz(W, width - j), W);
        return;
    }
    for (size_t p = 0; p < kc; p += PACK_KT) {
        const size_t kk = min_sz(PACK_KT, kc - p);
        for (size_t r = p + PACK_AHEAD; r < min_sz(p + PACK_AHEAD + kk, kc); r++) {
            const char *row = source_at(s, r, 0);
            for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(row + o);
            __builtin_prefetch(row + bytes - 1);
        }
        for (size_t j = 0; j < width; j += W)
            pack_cols_at(ar, dst + j * ks + p / ar->kpack * W, s, p, j, kk, min_sz(W, width - j), W);
    }
}

/* op(A) rows [i0, i0+mc) x k range [p0, p0+kc) into MR-row panels (stage:
 * this thread's buffer for a widened block). An arch with its own A layout
 * (pack_a) has bf16 packers for it too. */
static void pack_a(const ff_gemm_arch_t *ar, const problem_t *P, size_t i0, size_t mc, size_t p0, size_t kc,
                   float *dst, float *stage) {
    const size_t MR = ar->mr; /* A is (k,m) when ta: op(A)(i,p) = A[p*lda + i]; else (m,k) */
    const source_t s = P->ta ? block(ar, P->A, P->a16, P->lda, p0, i0, kc, mc, stage)
                             : block(ar, P->A, P->a16, P->lda, i0, p0, mc, kc, stage);
    if (ar->pack_a) {
        if (s.bf16) ar->pack_a_bf16(dst, s.p, s.ld, P->ta, mc, kc);
        else ar->pack_a(dst, s.p, s.ld, P->ta, mc, kc);
        return;
    }
    if (P->ta) {
        pack_cols_block(ar, dst, s, kc, mc, MR);
        return;
    }
    for (size_t ir = 0; ir < mc; ir += MR)
        pack_rows_at(ar, dst + ir * ff_gemm_slots(ar, kc), s, ir, 0, kc, min_sz(MR, mc - ir), MR);
}

/* B panels packed per take: a row of the group is a few whole cache lines. */
#define B_GROUP 4

/* op(B) panels [q0, q0+B_GROUP) of the block at column jc (nc wide) over [p0, p0+kc). */
static void pack_b_group(const ff_gemm_arch_t *ar, const problem_t *P, size_t jc, size_t nc, size_t q0, size_t p0,
                         size_t kc, float *bpack, float *stage) {
    const size_t NR = ar->nr, j0 = q0 * NR, width = min_sz(B_GROUP * NR, nc - j0);
    const size_t ks = ff_gemm_slots(ar, kc);
    float *dst = bpack + j0 * ks;
    if (!P->tb) { /* B is (k,n) */
        pack_cols_block(ar, dst, block(ar, P->B, P->b16, P->ldb, p0, jc + j0, kc, width, stage), kc, width, NR);
    } else { /* B is (n,k): op(B)(p,j) = B[j*ldb + p] */
        const source_t s = block(ar, P->B, P->b16, P->ldb, jc + j0, p0, width, kc, stage);
        for (size_t j = 0; j < width; j += NR) pack_rows_at(ar, dst + j * ks, s, j, 0, kc, min_sz(NR, width - j), NR);
    }
    for (size_t j = 0; j < width; j += NR) ff_gemm_pad_panel(ar, dst + j * ks, kc, NR);
}

/* Work handed out by shared counters, so a thread slowed by another process
 * on its core simply takes fewer pieces (a static split would leave the whole
 * team waiting on it). Who computes a piece never changes its bits. */
typedef struct {
    size_t next_b; /* B panel groups packed so far in this (jc, pc) step */
    size_t next_c; /* compute pieces taken so far in this step */
} team_sync_t;

static inline void team_barrier(int nth) {
#if FF_HAVE_OPENMP
    if (nth > 1) {
#pragma omp barrier
    }
#else
    (void)nth;
#endif
}

/* C = act(alpha op(A) op(B) + beta C + bias) by the `nth` threads of a team
 * (tid is this one; all call it), or by one thread alone when nth == 1 (no
 * barriers then). bpack and sync are shared by the team; apack is this
 * thread's own. A compute piece is one MC block of rows times a chunk of the
 * B block's NR panels; chunks exist only to give every thread a few pieces. */
static void gemm_team(const ff_gemm_arch_t *ar, const problem_t *P, int tid, int nth, team_sync_t *sync,
                      float *bpack, float *apack, float *stage) {
    const size_t MR = ar->mr, NR = ar->nr, NC = ar->nc;
    const size_t m = P->m, n = P->n, k = P->k;
    const size_t KC = ff_gemm_k_block(ar, k), MC = ff_gemm_m_block(ar, m);
    const size_t nic = cdiv(m, MC);
    if (tid == 0) {
        __atomic_store_n(&sync->next_b, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&sync->next_c, 0, __ATOMIC_RELAXED);
    }
    team_barrier(nth);

    for (size_t jc = 0; jc < n; jc += NC) {
        const size_t nc = min_sz(NC, n - jc), npan = cdiv(nc, NR);
        size_t nch = 1;
        while (nth > 1 && nic * nch < (size_t)(4 * nth) && nch * 2 <= npan) nch *= 2;

        for (size_t pc = 0; pc < k; pc += KC) {
            const size_t kc = min_sz(KC, k - pc), ks = ff_gemm_slots(ar, kc);
            for (size_t g; (g = ff_gemm_take(&sync->next_b, nth)) < cdiv(npan, B_GROUP);)
                pack_b_group(ar, P, jc, nc, g * B_GROUP, pc, kc, bpack, stage);
            team_barrier(nth);
            if (tid == 0) __atomic_store_n(&sync->next_b, 0, __ATOMIC_RELAXED); /* unused until the next step */

            const int last = pc + kc == k;
            ff_gemm_epi_t epi = {P->alpha, pc == 0 ? P->beta : 1.0f, pc > 0 || P->beta != 0.0f,
                                 last ? P->act : FF_ACT_NONE, NULL, P->c16};
            size_t packed_ic = (size_t)-1;
            for (size_t u; (u = ff_gemm_take(&sync->next_c, nth)) < nic * nch;) {
                const size_t ic = u / nch * MC, ch = u % nch, mc = min_sz(MC, m - ic);
                if (ic != packed_ic) pack_a(ar, P, ic, mc, pc, kc, apack, stage), packed_ic = ic;
                for (size_t q = npan * ch / nch; q < npan * (ch + 1) / nch; q++) {
                    const size_t j = jc + q * NR, nr = min_sz(NR, nc - q * NR);
                    const float *bp = bpack + q * NR * ks;
                    epi.bias = last && P->bias ? P->bias + j : NULL;
                    for (size_t ir = 0; ir < mc; ir += MR)
                        ar->kernel(kc, apack + ir * ks, bp, (float *)element(P->C, P->c16, P->ldc, ic + ir, j),
                                   P->ldc, min_sz(MR, mc - ir), nr, &epi);
                }
            }
            team_barrier(nth); /* the next step overwrites the shared B block */
            if (tid == 0) __atomic_store_n(&sync->next_c, 0, __ATOMIC_RELAXED); /* unused until after the next barrier */
        }
    }
}

/* k == 0: C = act(beta C + bias), the product being empty. */
static void epilogue_only(const problem_t *P) {
    ff_gemm_epi_t epi = {P->alpha, P->beta, P->beta != 0.0f, P->act, P->bias};
    float zero[64] = {0};
    for (size_t i = 0; i < P->m; i++)
        for (size_t j = 0; j < P->n; j += 64) {
            ff_gemm_epi_t e = epi;
            if (e.bias) e.bias += j;
            ff_gemm_epilogue_scalar(zero, 0, (float *)P->C + i * P->ldc + j, P->ldc, 1, min_sz(64, P->n - j), &e);
        }
}

/* Pack buffers in 32-bit slots (a slot holds kpack values of k). */
static size_t apack_floats(const ff_gemm_arch_t *ar, const problem_t *P) {
    return ff_gemm_m_block(ar, P->m) * ff_gemm_slots(ar, ff_gemm_k_block(ar, P->k));
}

static size_t bpack_floats(const ff_gemm_arch_t *ar, const problem_t *P) {
    return min_sz(ar->nc, cdiv(P->n, ar->nr) * ar->nr) * ff_gemm_slots(ar, ff_gemm_k_block(ar, P->k));
}

/* Multiply-adds worth one more thread: waking a team and splitting the work
 * costs ~6 us, and measured on Zen 5 two threads win from ~150^3 on. */
#define GEMM_GRAIN ((size_t)3 << 19)

/* Item b of a batch of products. */
static problem_t item(const problem_t *P0, size_t b, size_t stride_a, size_t stride_b, size_t stride_c) {
    problem_t P = *P0;
    P.A = element(P0->A, P0->a16, stride_a, b, 0);
    P.B = element(P0->B, P0->b16, stride_b, b, 0);
    P.C = (void *)element(P0->C, P0->c16, stride_c, b, 0);
    return P;
}

/* Floats of a thread's stage for the widened blocks of bf16 operands (an
 * arch without bf16 packers): an A block, or a group of B panels, whichever
 * is larger. */
static size_t stage_floats(const ff_gemm_arch_t *ar, const problem_t *P) {
    if ((!P->a16 && !P->b16) || ar->pack_rows_bf16) return 0;
    const size_t kc = ff_gemm_k_block(ar, P->k), a = ff_gemm_m_block(ar, P->m) * kc, b = B_GROUP * (size_t)ar->nr * kc;
    return a > b ? a : b;
}

/* A bf16 C of a product summed over several k blocks (or none): the
 * partial sums stay float, in a float copy of C (this thread's grow-only
 * scratch: no page faults once warm) rounded into C at the end. */
static int via_float_copy(const ff_gemm_arch_t *ar, int storage, int trans_a, int trans_b, size_t m, size_t n,
                          size_t k, float alpha, const void *A, size_t lda, size_t stride_a, const void *B, size_t ldb,
                          size_t stride_b, float beta, uint16_t *C, size_t ldc, size_t stride_c, const float *bias,
                          ff_activation_t act, size_t batch) {
    float *copy = pack_buffer(FF_SCRATCH_GEMM_C, batch * m * n);
    if (copy == NULL) return -1;
    for (size_t b = 0; beta != 0.0f && b < batch; b++) ff_bf16_widen_rows(copy + b * m * n, C + b * stride_c, ldc, m, n);
    const int rc = ff_gemm_batched_arch(ar, storage & ~FF_GEMM_C_BF16, trans_a, trans_b, m, n, k, alpha, A, lda,
                                        stride_a, B, ldb, stride_b, beta, copy, n, m * n, bias, act, batch);
    for (size_t b = 0; rc == 0 && b < batch; b++) {
        if (ldc == n) /* one parallel pass */
            ff_to_bf16(C + b * stride_c, copy + b * m * n, m * n);
        else
            for (size_t i = 0; i < m; i++) ff_to_bf16(C + b * stride_c + i * ldc, copy + (b * m + i) * n, n);
    }
    return rc;
}

int ff_gemm_batched_arch(const ff_gemm_arch_t *ar, int storage, int trans_a, int trans_b, size_t m, size_t n,
                         size_t k, float alpha, const void *A, size_t lda, size_t stride_a, const void *B, size_t ldb,
                         size_t stride_b, float beta, void *C, size_t ldc, size_t stride_c, const float *bias,
                         ff_activation_t act, size_t batch) {
    if (m == 0 || n == 0 || batch == 0) return 0;
    const int a16 = (storage & FF_GEMM_A_BF16) != 0, b16 = (storage & FF_GEMM_B_BF16) != 0;
    const int c16 = (storage & FF_GEMM_C_BF16) != 0;
    if (c16 && (k == 0 || ff_gemm_k_block(ar, k) < k))
        return via_float_copy(ar, storage, trans_a, trans_b, m, n, k, alpha, A, lda, stride_a, B, ldb, stride_b, beta,
                              C, ldc, stride_c, bias, act, batch);
    problem_t P0 = {trans_a != 0, trans_b != 0, a16, b16, c16, m, n, k, alpha, beta, A, B, lda, ldb, ldc, C, bias,
                    (int)act};
    if (k == 0) {
        for (size_t b = 0; b < batch; b++) {
            problem_t P = item(&P0, b, 0, 0, stride_c);
            epilogue_only(&P);
        }
        return 0;
    }
    const size_t macs = m * n * k;
    int nth = ff_threads_for(macs * batch, GEMM_GRAIN);
    /* Many items: each thread runs whole products (no barriers, no sharing).
     * Few big ones: the whole team works on each product in turn. */
    const int by_item = batch >= (size_t)(4 * nth) || (batch >= (size_t)nth && macs < ((size_t)1 << 22));
    const size_t afl = apack_floats(ar, &P0), bfl = bpack_floats(ar, &P0), sfl = stage_floats(ar, &P0);
    float *shared_b = NULL;
    if (!by_item && !(shared_b = pack_buffer(FF_SCRATCH_GEMM_B, bfl))) return -1;
    int failed = 0;
    team_sync_t sync = {0, 0};
    size_t next_item = 0;

    FF_OMP(parallel num_threads(nth) if (nth > 1))
    {
#if FF_HAVE_OPENMP
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
#else
        const int tid = 0, team = 1;
#endif
        float *apack = pack_buffer(FF_SCRATCH_GEMM_A, afl);
        float *bpack = by_item ? pack_buffer(FF_SCRATCH_GEMM_B, bfl) : shared_b;
        float *stage = sfl ? pack_buffer(FF_SCRATCH_GEMM_STAGE, sfl) : NULL;
        if (!apack || !bpack || (sfl && !stage)) {
            FF_OMP(atomic write)
            failed = 1;
        }
        FF_OMP(barrier)
        int bad;
        FF_OMP(atomic read)
        bad = failed;
        if (!bad) {
            if (ar->begin) ar->begin();
            if (by_item) {
                /* Whole items to whoever is free: an item's bits do not depend on who runs it. */
                team_sync_t own = {0, 0};
                for (size_t b; (b = ff_gemm_take(&next_item, team)) < batch;) {
                    problem_t P = item(&P0, b, stride_a, stride_b, stride_c);
                    gemm_team(ar, &P, 0, 1, &own, bpack, apack, stage);
                }
            } else {
                for (size_t b = 0; b < batch; b++) {
                    problem_t P = item(&P0, b, stride_a, stride_b, stride_c);
                    gemm_team(ar, &P, tid, team, &sync, bpack, apack, stage);
                }
            }
            if (ar->end) ar->end();
        }
    }
    return failed ? -1 : 0;
}

int ff_sgemm_batched(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *A,
                     size_t lda, size_t stride_a, const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                     size_t ldc, size_t stride_c, const float *bias, ff_activation_t act, size_t batch) {
    return ff_gemm_batched_arch(ff_gemm_arch(), 0, trans_a, trans_b, m, n, k, alpha, A, lda, stride_a, B, ldb,
                                stride_b, beta, C, ldc, stride_c, bias, act, batch);
}

int ff_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *A, size_t lda,
             const float *B, size_t ldb, float beta, float *C, size_t ldc, const float *bias, ff_activation_t act) {
    return ff_sgemm_batched(trans_a, trans_b, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, bias, act, 1);
}
