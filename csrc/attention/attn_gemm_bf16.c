/* Attention's block products in bf16 (compute_dtype="bfloat16"): the gemm
 * leaf's contract (attn_internal.h) with every element of A and B rounded to
 * bf16 (nearest even, as ff_bf16_round) and the products summed in fp32, so
 * QK^T, PV and the backward's four products take the bf16 numerics of the
 * linear layers while the softmax statistics stay fp32. An operand stored as
 * bf16 values (storage) is read as it is: rounding would keep it.
 *
 * Per chunk of KCH k, A and B are rounded once into small buffers, by path
 * (ff_bf16_path): the AMX kernel's panels (the bf16 GEMM's packers and tile
 * kernel), bf16 pair panels for vdpbf16ps, or rounded floats for the fp32
 * leaf (the emulated path). A chunk's sum goes into C before the next
 * chunk's (k <= KCH in the model unless the head width is larger). */
#include <string.h>

#include "attention/attn_internal.h"
#include "gemm/gemm.h"
#include "gemm/gemm_internal.h"
#include "runtime/simd_target.h"

#define KCH 128  /* k per chunk: the flash blocks' depth */
#define MCH 128  /* rows of A per chunk: the forward's key block */
#define NCH 64   /* columns of C per chunk: four AVX-512 vectors */

static inline size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* ---- emulated: rounded copies through the fp32 leaf ---------------------- */

/* dst[0, n) = the n values at src rounded to bf16: floats rounded, bf16 values widened. */
static void rounded(const ff_attn_leaves_t *L, float *dst, const void *src, size_t n, int bf16) {
    if (bf16)
        ff_bf16_widen_rows(dst, src, n, 1, n);
    else
        L->round_bf16(dst, src, n);
}

static void gemm_bf16_emulated(float *C, size_t ldc, const void *A, size_t ars, size_t acs, const void *B,
                               size_t ldb, size_t m, size_t n, size_t k, float alpha, int accumulate, int storage) {
    const ff_attn_leaves_t *L = ff_attn_leaves();
    if (k == 0) {
        L->gemm(C, ldc, A, ars, acs, B, ldb, m, n, 0, alpha, accumulate, 0);
        return;
    }
    /* a: [mi][KCH] (A's rows contiguous along k) or [kk][MCH] (columns contiguous) */
    const int by_rows = acs == 1, a16 = storage & FF_GEMM_A_BF16, b16 = storage & FF_GEMM_B_BF16;
    float a[MCH * KCH], b[KCH * NCH];
    for (size_t i0 = 0; i0 < m; i0 += MCH) {
        const size_t mi = min_sz(MCH, m - i0);
        for (size_t p0 = 0; p0 < k; p0 += KCH) {
            const size_t kk = min_sz(KCH, k - p0), a0 = i0 * ars + p0 * acs;
            if (by_rows)
                for (size_t i = 0; i < mi; i++)
                    rounded(L, a + i * KCH, ff_stored_at(A, a16, a0 + i * ars), kk, a16);
            else
                for (size_t p = 0; p < kk; p++)
                    rounded(L, a + p * MCH, ff_stored_at(A, a16, a0 + p * acs), mi, a16);
            for (size_t j0 = 0; j0 < n; j0 += NCH) {
                const size_t nj = min_sz(NCH, n - j0);
                for (size_t p = 0; p < kk; p++)
                    rounded(L, b + p * NCH, ff_stored_at(B, b16, (p0 + p) * ldb + j0), nj, b16);
                L->gemm(C + i0 * ldc + j0, ldc, a, by_rows ? KCH : 1, by_rows ? 1 : MCH, b, NCH, mi, nj, kk, alpha,
                        p0 > 0 || accumulate, 0);
            }
        }
    }
}

/* The bf16 GEMM's pair packers (gemm_internal.h) on floats or bf16 values. */
#if FF_HAVE_AMX || (FF_X86 && !defined(FF_EMULATE_AVX512))
static inline void pack_rows_pairs(float *dst, const void *src, int bf16, size_t ld, size_t kc, size_t w, size_t W) {
    if (bf16)
        ff_gemm_pack_rows_pairs_bf16(dst, src, ld, kc, w, W);
    else
        ff_gemm_pack_rows_pairs(dst, src, ld, kc, w, W);
}

static inline void pack_cols_pairs(float *dst, const void *src, int bf16, size_t ld, size_t kc, size_t w, size_t W) {
    if (bf16)
        ff_gemm_pack_cols_pairs_bf16(dst, src, ld, kc, w, W);
    else
        ff_gemm_pack_cols_pairs(dst, src, ld, kc, w, W);
}
#endif

/* ---- AVX512-BF16: vdpbf16ps on pair panels -------------------------------- */

#if FF_X86 && !defined(FF_EMULATE_AVX512)
#include <immintrin.h>

#define GROUP 16 /* rows of an A panel (the pair packers' width) */
#define TR 4     /* rows of a register tile: TR x NV accumulators */

FF_TARGET_AVX512BF16_BEGIN

/* C rows [0, rows) x NV vectors (the last one masked to `tail`) of
 * (accumulate ? C : 0) + alpha * sum over the ks pair slots of a (GROUP-wide,
 * [ks][GROUP]) and b ([ks][NCH]). */
static inline __attribute__((always_inline)) void tile(float *C, size_t ldc, const uint32_t *a, const uint32_t *b,
                                                       size_t ks, size_t rows, float alpha, int accumulate,
                                                       const int NV, __mmask16 tail) {
    __m512 acc[TR][4];
    for (int r = 0; r < TR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (size_t s = 0; s < ks; s++) {
        __m512bh bv[4];
        for (int v = 0; v < NV; v++) bv[v] = (__m512bh)_mm512_load_si512(b + s * NCH + 16 * v);
        for (int r = 0; r < TR; r++) {
            const __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[s * GROUP + r]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], ar, bv[v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha);
    for (size_t r = 0; r < rows; r++)
        for (int v = 0; v < NV; v++) {
            const __mmask16 lanes = v == NV - 1 ? tail : (__mmask16)0xffff;
            float *c = C + r * ldc + 16 * v;
            __m512 x = alpha == 1.0f ? acc[r][v] : _mm512_mul_ps(acc[r][v], va);
            if (accumulate) x = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, c), x);
            _mm512_mask_storeu_ps(c, lanes, x);
        }
}

typedef void (*tile_fn)(float *, size_t, const uint32_t *, const uint32_t *, size_t, size_t, float, int, __mmask16);
#define TILE(NV)                                                                                              \
    static void tile_##NV(float *C, size_t ldc, const uint32_t *a, const uint32_t *b, size_t ks, size_t rows, \
                          float alpha, int acc, __mmask16 tail) {                                             \
        tile(C, ldc, a, b, ks, rows, alpha, acc, NV, tail);                                                   \
    }
TILE(1)
TILE(2)
TILE(3)
TILE(4)
static const tile_fn g_tiles[4] = {tile_1, tile_2, tile_3, tile_4};

static void gemm_bf16_avx512bf16(float *C, size_t ldc, const void *A, size_t ars, size_t acs, const void *B,
                                 size_t ldb, size_t m, size_t n, size_t k, float alpha, int accumulate, int storage) {
    if (k == 0) {
        gemm_bf16_emulated(C, ldc, A, ars, acs, B, ldb, m, n, k, alpha, accumulate, storage);
        return;
    }
    const int a16 = storage & FF_GEMM_A_BF16, b16 = storage & FF_GEMM_B_BF16;
    uint32_t a[MCH / GROUP * KCH / 2 * GROUP] __attribute__((aligned(64)));
    uint32_t b[KCH / 2 * NCH] __attribute__((aligned(64)));
    for (size_t i0 = 0; i0 < m; i0 += MCH) {
        const size_t mi = min_sz(MCH, m - i0);
        for (size_t p0 = 0; p0 < k; p0 += KCH) {
            const size_t kk = min_sz(KCH, k - p0), ks = (kk + 1) / 2;
            /* A panels of GROUP rows, [ks][GROUP] pair slots each (rows past mi zero) */
            for (size_t g = 0; g < mi; g += GROUP) {
                const void *src = ff_stored_at(A, a16, (i0 + g) * ars + p0 * acs);
                float *dst = (float *)(a + g * ks);
                const size_t w = min_sz(GROUP, mi - g);
                if (acs == 1) /* rows contiguous along k */
                    pack_rows_pairs(dst, src, a16, ars, kk, w, GROUP);
                else /* columns contiguous: k is the row of the source */
                    pack_cols_pairs(dst, src, a16, acs, kk, w, GROUP);
            }
            for (size_t j0 = 0; j0 < n; j0 += NCH) {
                const size_t nj = min_sz(NCH, n - j0), nv = (nj + 15) / 16;
                const __mmask16 tail = (__mmask16)(nj % 16 ? (1u << nj % 16) - 1 : 0xffff);
                pack_cols_pairs((float *)b, ff_stored_at(B, b16, p0 * ldb + j0), b16, ldb, kk, nj, NCH);
                for (size_t r0 = 0; r0 < mi; r0 += TR)
                    g_tiles[nv - 1](C + (i0 + r0) * ldc + j0, ldc, a + r0 / GROUP * GROUP * ks + r0 % GROUP, b, ks,
                                    min_sz(TR, mi - r0), alpha, p0 > 0 || accumulate, tail);
            }
        }
    }
}

FF_TARGET_END
#endif

/* ---- AMX: the GEMM's tile kernel on 32 x 32 pieces ------------------------ */

#if FF_HAVE_AMX
#define AMX_T 32 /* FF_GEMM_AMX_MR = FF_GEMM_AMX_NR */

/* Sapphire Rapids runs vdpbf16ps at a quarter of its fp32 multiply-add
 * rate (one per two cycles): its bf16 products go to the tiles. */
static void gemm_bf16_amx(float *C, size_t ldc, const void *A, size_t ars, size_t acs, const void *B, size_t ldb,
                          size_t m, size_t n, size_t k, float alpha, int accumulate, int storage) {
    if (k == 0) {
        gemm_bf16_emulated(C, ldc, A, ars, acs, B, ldb, m, n, k, alpha, accumulate, storage);
        return;
    }
    const int a16 = storage & FF_GEMM_A_BF16, b16 = storage & FF_GEMM_B_BF16;
    float a[MCH * KCH / 2] __attribute__((aligned(64))), b[NCH * KCH / 2] __attribute__((aligned(64)));
    ff_gemm_amx_begin();
    for (size_t i0 = 0; i0 < m; i0 += MCH) {
        const size_t mi = min_sz(MCH, m - i0);
        for (size_t p0 = 0; p0 < k; p0 += KCH) {
            const size_t kk = min_sz(KCH, k - p0), ks = (kk + 31) / 32 * 16, used = (kk + 1) / 2;
            const void *src = ff_stored_at(A, a16, i0 * ars + p0 * acs);
            const int trans = acs != 1; /* 0: rows contiguous along k; 1: columns, k the row of the source */
            if (a16)
                ff_gemm_pack_a_amx_bf16(a, src, trans ? acs : ars, trans, mi, kk);
            else
                ff_gemm_pack_a_amx(a, src, trans ? acs : ars, trans, mi, kk);
            const ff_gemm_epi_t epi = {alpha, 1.0f, p0 > 0 || accumulate, FF_ACT_NONE, NULL};
            for (size_t j0 = 0; j0 < n; j0 += NCH) {
                const size_t nj = min_sz(NCH, n - j0);
                for (size_t q = 0; q < nj; q += AMX_T) {
                    float *panel = b + q * ks;
                    pack_cols_pairs(panel, ff_stored_at(B, b16, p0 * ldb + j0 + q), b16, ldb, kk,
                                    min_sz(AMX_T, nj - q), AMX_T);
                    memset(panel + used * AMX_T, 0, (ks - used) * AMX_T * sizeof(float));
                }
                for (size_t r = 0; r < mi; r += AMX_T)
                    for (size_t q = 0; q < nj; q += AMX_T)
                        ff_gemm_kernel_amx(kk, a + r * ks, b + q * ks, C + (i0 + r) * ldc + j0 + q, ldc,
                                           min_sz(AMX_T, mi - r), min_sz(AMX_T, nj - q), &epi);
            }
        }
    }
    ff_gemm_amx_end();
}
#endif

ff_attn_gemm_fn ff_attn_gemm_bf16(void) {
    const char *path = ff_bf16_path();
#if FF_HAVE_AMX
    if (strcmp(path, "amx") == 0) return gemm_bf16_amx;
#endif
#if FF_X86 && !defined(FF_EMULATE_AVX512)
    if (strcmp(path, "avx512_bf16") == 0) return gemm_bf16_avx512bf16;
#endif
    (void)path;
    return gemm_bf16_emulated;
}
