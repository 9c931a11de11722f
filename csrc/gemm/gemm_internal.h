/* Pieces shared by the GEMM driver, the packing routines and the per-ISA
 * micro-kernels. Not part of the public API (see gemm.h). */
#ifndef FF_GEMM_INTERNAL_H
#define FF_GEMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gemm/gemm.h"

/* What a micro-kernel does with its tile once the products over one KC block
 * are summed in registers (acc is the MR x NR tile of A_panel @ B_panel):
 *
 *     v = alpha * acc                  (always)
 *     v = v + beta * C   if load_c     (beta == 1 skips the multiply: exact anyway)
 *     v = v + bias[j]    if bias       (only on the last KC block)
 *     C = act(v)                       (act only on the last KC block)
 *
 * Full and edge tiles go through the same instruction sequence per element, so
 * a value never depends on where its tile starts (nor on the thread split). */
typedef struct {
    float alpha;
    float beta;
    int load_c;        /* 0: C's old value is not read (beta == 0 on the first block) */
    int act;           /* ff_activation_t */
    const float *bias; /* bias at the tile's first column, or NULL */
    int c_bf16;        /* C holds bf16 values (uint16_t, passed as float *; ldc counts them): C's old value is
                          read widened, the result stored rounded (only with one k block: see gemm.c) */
} ff_gemm_epi_t;

/* Row i of the kernel's C (c, ldc as the kernel got them), floats or bf16 values. */
static inline float *ff_gemm_c_row(float *c, size_t ldc, size_t i, const ff_gemm_epi_t *epi) {
    return epi->c_bf16 ? (float *)((uint16_t *)c + i * ldc) : c + i * ldc;
}
/* The row stride of C in floats, for prefetching its rows (half ldc for bf16 values). */
static inline size_t ff_gemm_c_prefetch_ld(size_t ldc, const ff_gemm_epi_t *epi) {
    return epi->c_bf16 ? ldc / 2 : ldc;
}

/* a is a packed MR x kc panel ([kc][MR]), b a packed kc x NR panel ([kc][NR]),
 * c the (mr, nr) corner of C with leading dimension ldc; mr <= MR, nr <= NR.
 * Panels are zero-padded, so edge tiles compute the full tile and store part. */
typedef void (*ff_gemm_kernel_fn)(size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t mr,
                                  size_t nr, const ff_gemm_epi_t *epi);

typedef void (*ff_gemm_pack_fn)(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W);

/* mc rows of op(A) over kc (trans: element (i, p) at src[p*ld + i], else at
 * src[i*ld + p]) into ceil(mc / MR) panels of the kernel's own A layout,
 * panel q at dst + q*MR*slots(kc), zero-padded. */
typedef void (*ff_gemm_pack_a_fn)(float *dst, const float *src, size_t ld, int trans, size_t mc, size_t kc);
/* The same from bf16 values (uint16_t): panels as from their float32 values. */
typedef void (*ff_gemm_pack_bf16_fn)(float *dst, const uint16_t *src, size_t ld, size_t kc, size_t w, size_t W);
typedef void (*ff_gemm_pack_a_bf16_fn)(float *dst, const uint16_t *src, size_t ld, int trans, size_t mc, size_t kc);

/* One instruction set's kernel and blocking. Blocking depends on the kernel
 * and the problem shape only, never on the thread count. */
typedef struct {
    const char *name;
    int kpack;         /* k values per 32-bit panel slot: 1 (fp32), 2 (bf16 pairs, see gemm_bf16.c) */
    int kgrain;        /* panels' depth padded with zeros to a multiple of kgrain k values (0: none) */
    int mr, nr;        /* register tile */
    size_t mc, kc, nc; /* A block mc x kc (L2), B panel kc x nr (L1), B block kc x nc (L3) */
    ff_gemm_kernel_fn kernel;
    ff_gemm_pack_fn pack_rows, pack_cols; /* see below */
    ff_gemm_pack_a_fn pack_a;             /* NULL: A panels as B's, [slots][MR] */
    /* The packers for operands stored in bf16 (ff_bgemm_stored), or NULL: then
     * a block is widened to floats for the float packers (gemm.c). */
    ff_gemm_pack_bf16_fn pack_rows_bf16, pack_cols_bf16;
    ff_gemm_pack_a_bf16_fn pack_a_bf16;
    void (*begin)(void), (*end)(void);    /* NULL, or called by each thread around its kernel calls */
} ff_gemm_arch_t;

/* The active instruction set's kernel and blocking (gemm.c). */
ff_gemm_arch_t *ff_gemm_arch(void);
/* The same for bf16 products (gemm_bf16.c): rounded inputs, fp32 sums. */
const ff_gemm_arch_t *ff_gemm_arch_bf16(void);
/* C = act(alpha op(A) op(B) + beta C + bias) for `batch` products with arch
 * ar: ff_sgemm_batched's driver, shared with the bf16 products (gemm.c);
 * storage as ff_bgemm_stored's. */
int ff_gemm_batched_arch(const ff_gemm_arch_t *ar, int storage, int trans_a, int trans_b, size_t m, size_t n,
                         size_t k, float alpha, const void *A, size_t lda, size_t stride_a, const void *B, size_t ldb,
                         size_t stride_b, float beta, void *C, size_t ldc, size_t stride_c, const float *bias,
                         ff_activation_t act, size_t batch);
/* k values of a panel kc deep, its padding included. */
static inline size_t ff_gemm_depth(const ff_gemm_arch_t *ar, size_t kc) {
    return ar->kgrain > 1 ? (kc + (size_t)ar->kgrain - 1) / (size_t)ar->kgrain * (size_t)ar->kgrain : kc;
}
/* Panel slots holding kc values of k (and the padding). */
static inline size_t ff_gemm_slots(const ff_gemm_arch_t *ar, size_t kc) {
    return (ff_gemm_depth(ar, kc) + (size_t)ar->kpack - 1) / (size_t)ar->kpack;
}
/* Zeros in the padding slots of a W-wide [slots][W] panel packed kc deep. */
static inline void ff_gemm_pad_panel(const ff_gemm_arch_t *ar, float *panel, size_t kc, size_t W) {
    const size_t used = (kc + (size_t)ar->kpack - 1) / (size_t)ar->kpack, ks = ff_gemm_slots(ar, kc);
    for (size_t i = used * W; i < ks * W; i++) panel[i] = 0.0f;
}
/* KC for a depth k: near-equal blocks of at most ar->kc, a function of k only
 * (k = 300 runs 150 + 150); MC likewise for m rows, a multiple of MR. */
size_t ff_gemm_k_block(const ff_gemm_arch_t *ar, size_t k);
size_t ff_gemm_m_block(const ff_gemm_arch_t *ar, size_t m);

/* The next piece from a counter shared by a team of nth threads (who takes
 * a piece never changes its bits). */
static inline size_t ff_gemm_take(size_t *counter, int nth) {
    if (nth == 1) return (*counter)++;
    return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* Micro-kernels, one file per instruction set; the driver (gemm.c) pairs
 * each with its blocking. The SIMD ones exist only on x86-64. */
void ff_gemm_kernel_generic(size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t mr, size_t nr,
                            const ff_gemm_epi_t *epi);
void ff_gemm_kernel_avx2(size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t mr, size_t nr,
                         const ff_gemm_epi_t *epi);
void ff_gemm_kernel_avx512(size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t mr, size_t nr,
                           const ff_gemm_epi_t *epi);
/* bf16 pairs (gemm_bf16.c), the AVX-512 tile: a and b hold pair slots. */
void ff_gemm_kernel_avx512bf16(size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t mr,
                               size_t nr, const ff_gemm_epi_t *epi);
/* bf16 pairs on AMX tiles (kernel_amx.c): a 32x32 tile of C in four 16x16
 * accumulator tiles; A panels in its own layout (pack_a), B panels pairs. */
void ff_gemm_kernel_amx(size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t mr, size_t nr,
                        const ff_gemm_epi_t *epi);
void ff_gemm_pack_a_amx(float *dst, const float *src, size_t ld, int trans, size_t mc, size_t kc);
void ff_gemm_pack_a_amx_bf16(float *dst, const uint16_t *src, size_t ld, int trans, size_t mc, size_t kc);
void ff_gemm_amx_begin(void);
void ff_gemm_amx_end(void);
/* The bf16 value nearest x (ties to even; NaN stays a quiet NaN), as the top
 * half of its float32. Without branches, so that loops over it vectorise. */
static inline uint16_t ff_bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    const uint32_t nearest = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, quiet_nan = (u >> 16) | 0x40u;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : nearest);
}
/* The float32 a bf16 value is the top half of (exact). */
static inline float ff_bf16_value(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
/* Element `offset` of an array of floats, or of bf16 values (bf16). */
static inline const void *ff_stored_at(const void *X, int bf16, size_t offset) {
    return (const char *)X + offset * (bf16 ? sizeof(uint16_t) : sizeof(float));
}
/* dst (rows x cols, packed) = src's bf16 values (row stride ld) as floats.
 * Widening is exact and rounding to bf16 keeps bf16 values as they are, so
 * a product on stored bf16 operands gives the bits of their float32 copies. */
static inline float *ff_bf16_widen_rows(float *dst, const uint16_t *src, size_t ld, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) dst[r * cols + c] = ff_bf16_value(src[r * ld + c]);
    return dst;
}
#define FF_GEMM_AMX_MR 32
#define FF_GEMM_AMX_NR 32
#define FF_GEMM_GENERIC_MR 6
#define FF_GEMM_GENERIC_NR 8
#define FF_GEMM_AVX2_MR 6
#define FF_GEMM_AVX2_NR 16
#ifndef FF_GEMM_AVX512_MR
#define FF_GEMM_AVX512_MR 12
#endif
#define FF_GEMM_AVX512_NR 32
/* The fp32 SIMD kernel's tile for vectors of w floats (the bodies' FFV_W). */
#define FF_GEMM_SIMD_MR(w) ((w) == 8 ? FF_GEMM_AVX2_MR : FF_GEMM_AVX512_MR)
#define FF_GEMM_SIMD_NR(w) ((w) == 8 ? FF_GEMM_AVX2_NR : FF_GEMM_AVX512_NR)

/* Packing (pack.c). A panel is w <= W source vectors, stored [kc][W] with the
 * W - w missing ones zero-filled.
 * pack_rows: vector r is contiguous along k: element (r, p) at src[r*ld + p]
 *            (A not transposed; B transposed).
 * pack_cols: vector j is a column: element (p, j) at src[p*ld + j]
 *            (A transposed; B not transposed). */
void ff_gemm_pack_rows(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W);
void ff_gemm_pack_cols(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W);
/* The same with SIMD transposes/copies for the SIMD kernels' widths
 * (pack_avx2.c, pack_avx512.c); other widths fall back to the above. */
void ff_gemm_pack_rows_avx2(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W);
void ff_gemm_pack_cols_avx2(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W);
void ff_gemm_pack_rows_avx512(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W);
void ff_gemm_pack_cols_avx512(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W);

/* The AVX-512 kernel's epilogue (epilogue_simd.h) for the bf16 kernels, a
 * bf16 C rounded by vcvtneps2bf16 (epilogue_avx512bf16.c): on a finished
 * 12x32 tile t (64-byte aligned, [MR][NR]) into the (mr, nr) corner of C. */
void ff_gemm_store_avx512bf16(const float *t, float *c, size_t ldc, size_t mr, size_t nr, const ff_gemm_epi_t *epi);
/* The same epilogue on `rows` (any number) whole 32-wide rows, [rows][32] at t. */
void ff_gemm_store_rows_avx512bf16(const float *t, float *c, size_t ldc, size_t rows, const ff_gemm_epi_t *epi);

/* dst[i] = src[i] rounded to bf16 (ff_bf16_round), i < n; dst may be src: the
 * emulated path's packers, and attention's round_bf16 leaf. */
void ff_gemm_round_bf16(float *dst, const float *src, size_t n);
void ff_gemm_round_bf16_avx2(float *dst, const float *src, size_t n);
void ff_gemm_round_bf16_avx512(float *dst, const float *src, size_t n);

/* bf16 pair panels (pack_pairs_simd.h, AVX-512): slot (s, r) of a W-wide
 * panel, 32 bits, holds elements k = 2s (low half) and 2s + 1 (high half) of
 * vector r, each rounded to bf16 (nearest even); missing vectors and a
 * missing last odd element are zeros. Same arguments as the fp32 packers;
 * the _bf16 versions read bf16 values and give the panels of their floats. */
void ff_gemm_pack_rows_pairs(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W);
void ff_gemm_pack_cols_pairs(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W);
void ff_gemm_pack_rows_pairs_bf16(float *dst, const uint16_t *src, size_t ld, size_t kc, size_t w, size_t W);
void ff_gemm_pack_cols_pairs_bf16(float *dst, const uint16_t *src, size_t ld, size_t kc, size_t w, size_t W);

/* Epilogue helpers (epilogue.c), scalar and portable. */
#define FF_GEMM_EPI_BF16_MAX 64 /* columns of a bf16 C per call (the portable kernel's NR) */
/* tile (mr x nr, leading dimension ldt) holds acc; applies the epilogue into c. */
void ff_gemm_epilogue_scalar(const float *acc, size_t ldt, float *c, size_t ldc, size_t mr, size_t nr,
                             const ff_gemm_epi_t *epi);
/* x = 0.5 x (1 + erf(x / sqrt 2)) on n floats. */
void ff_gemm_gelu_inplace(float *x, size_t n);

/* Tuning hooks for the benchmark (gemm.c): the active kernel's blocking
 * (bf16 != 0: the bf16 products' kernel). get fills {MR, NR, MC, KC, NC};
 * set changes MC/KC/NC (0 keeps a value). */
void ff_gemm_set_blocking(int bf16, size_t mc, size_t kc, size_t nc);
void ff_gemm_get_blocking(int bf16, size_t out[5]);

#endif
