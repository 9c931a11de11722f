/* bf16 products: C = act(alpha * op(A) @ op(B) + beta * C + bias) with every
 * element of op(A) and op(B) rounded to bfloat16 (round to nearest even) and
 * the products summed in fp32, through the fp32 driver (gemm.c) with its
 * blocking and thread split: the bits do not depend on the thread count.
 *
 * Three paths, chosen once per call:
 * - amx (the CPU has AMX-BF16, the OS grants tile state, and FASTFORMER_SIMD
 *   allows AVX-512): the pair panels below, A's in the tile layout, multiplied
 *   on the tile unit (kernel_amx.c).
 * - avx512_bf16 (the CPU has AVX512-BF16 and FASTFORMER_SIMD allows
 *   AVX-512): panels hold bf16 pairs, element (k = 2s, 2s + 1) of a row or
 *   column in one 32-bit slot (low half even), and the kernel
 *   (kernel_avx512bf16.c) multiplies them with vdpbf16ps.
 * - emulated (every other CPU): the fp32 kernel of the active instruction
 *   set on panels whose values are rounded to bf16 as they are packed; the
 *   products of two bf16 values are exact in fp32, so only the sums round.
 * They differ only in the order each pair of products is summed (and in
 * vdpbf16ps and tdpbf16ps flushing subnormals): all are held to the same
 * float64 twin. */
#include <stdint.h>
#include <string.h>

#include "gemm/gemm_internal.h"
#include "runtime/runtime.h"
#include "runtime/simd_target.h"

#define TO_BF16_GRAIN 65536 /* elements worth a thread */

void ff_to_bf16(uint16_t *dst, const float *src, size_t n) {
    FF_OMP(parallel for schedule(static) num_threads(ff_threads_for(n, TO_BF16_GRAIN)))
    for (size_t i = 0; i < n; i++) dst[i] = ff_bf16_bits(src[i]);
}

float ff_bf16_round(float x) {
    const uint32_t u = (uint32_t)ff_bf16_bits(x) << 16;
    float y;
    memcpy(&y, &u, sizeof y);
    return y;
}

void ff_gemm_round_bf16(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = ff_bf16_round(src[i]);
}

/* ---- emulated: the fp32 packers, then rounding (vectors in pack_*.c) ---- */

#define ROUNDING_PACKER(name, packer, round)                                                       \
    static void name(float *dst, const float *src, size_t ld, size_t kc, size_t w, size_t W) {    \
        packer(dst, src, ld, kc, w, W);                                                            \
        round(dst, dst, kc * W);                                                                   \
    }
ROUNDING_PACKER(rows_generic, ff_gemm_pack_rows, ff_gemm_round_bf16)
ROUNDING_PACKER(cols_generic, ff_gemm_pack_cols, ff_gemm_round_bf16)
#if FF_X86
ROUNDING_PACKER(rows_avx2, ff_gemm_pack_rows_avx2, ff_gemm_round_bf16_avx2)
ROUNDING_PACKER(cols_avx2, ff_gemm_pack_cols_avx2, ff_gemm_round_bf16_avx2)
ROUNDING_PACKER(rows_avx512, ff_gemm_pack_rows_avx512, ff_gemm_round_bf16_avx512)
ROUNDING_PACKER(cols_avx512, ff_gemm_pack_cols_avx512, ff_gemm_round_bf16_avx512)
#endif

/* ---- the tables -------------------------------------------------------- */

enum { FF_BF16_EMULATED, FF_BF16_AVX512, FF_BF16_AMX };

/* Blocking as the fp32 kernel of the same width: the panels are half the
 * bytes, so they fit where fp32's do. */
static ff_gemm_arch_t g_emulated_generic = {.name = "bf16-emulated-generic", .kpack = 1,
                                            .mr = FF_GEMM_GENERIC_MR, .nr = FF_GEMM_GENERIC_NR, .mc = 144,
                                            .kc = 256, .nc = 4096, .kernel = ff_gemm_kernel_generic,
                                            .pack_rows = rows_generic, .pack_cols = cols_generic};
#if FF_X86
static ff_gemm_arch_t g_emulated_avx2 = {.name = "bf16-emulated-avx2", .kpack = 1, .mr = FF_GEMM_AVX2_MR,
                                         .nr = FF_GEMM_AVX2_NR, .mc = 144, .kc = 512, .nc = 4080,
                                         .kernel = ff_gemm_kernel_avx2, .pack_rows = rows_avx2,
                                         .pack_cols = cols_avx2};
static ff_gemm_arch_t g_emulated_avx512 = {.name = "bf16-emulated-avx512", .kpack = 1, .mr = FF_GEMM_AVX512_MR,
                                           .nr = FF_GEMM_AVX512_NR, .mc = 144, .kc = 512, .nc = 4096,
                                           .kernel = ff_gemm_kernel_avx512, .pack_rows = rows_avx512,
                                           .pack_cols = cols_avx512};
#if FF_HAVE_AMX
/* AMX: KC = 2048 takes the Transformer's k (512, 1536, 2048) in one block,
 * so C makes one trip through the epilogue and a bf16 C needs no float copy
 * (gemm.c); the A block (MC x KC, 512 KiB) and a B panel (128 KiB) stay in
 * L2 (2 MiB per core on Sapphire Rapids on), the B block (KC x NC, 8 MiB)
 * in L3, as fp32's. Against KC = 512 (Xeon, 2026-12-06, 2 threads, bench
 * gemm's Transformer shapes): 6% less time in all, dX qkv 0.78x -> 0.90x
 * torch; base's step 5% faster. KC = 256 measured clearly slower, 4096
 * slower on base's step; NC 1024..4096 alike. */
static ff_gemm_arch_t g_amx = {.name = "amx", .kpack = 2, .kgrain = 32, .mr = FF_GEMM_AMX_MR, .nr = FF_GEMM_AMX_NR,
                               .mc = 128, .kc = 2048, .nc = 2048, .kernel = ff_gemm_kernel_amx,
                               .pack_rows = ff_gemm_pack_rows_pairs,
                               .pack_cols = ff_gemm_pack_cols_pairs, .pack_a = ff_gemm_pack_a_amx,
                               .pack_rows_bf16 = ff_gemm_pack_rows_pairs_bf16,
                               .pack_cols_bf16 = ff_gemm_pack_cols_pairs_bf16, .pack_a_bf16 = ff_gemm_pack_a_amx_bf16,
                               .begin = ff_gemm_amx_begin, .end = ff_gemm_amx_end};
#endif
static ff_gemm_arch_t g_avx512_bf16 = {.name = "avx512_bf16", .kpack = 2, .mr = FF_GEMM_AVX512_MR,
                                       .nr = FF_GEMM_AVX512_NR, .mc = 144, .kc = 1024, .nc = 4096,
                                       .kernel = ff_gemm_kernel_avx512bf16, .pack_rows = ff_gemm_pack_rows_pairs,
                                       .pack_cols = ff_gemm_pack_cols_pairs,
                                       .pack_rows_bf16 = ff_gemm_pack_rows_pairs_bf16,
                                       .pack_cols_bf16 = ff_gemm_pack_cols_pairs_bf16};
#endif

int ff_bf16_path_built(const char *path) {
#if defined(FF_EMULATE_AVX512)
    (void)path;
    return 0;
#else
    return (strcmp(path, "amx") == 0 && FF_HAVE_AMX) || (strcmp(path, "avx512_bf16") == 0 && FF_X86);
#endif
}

int ff_cpu_has_avx512_bf16(void) {
#if FF_X86 && !defined(FF_EMULATE_AVX512) /* SIMDe's vdpbf16ps keeps subnormals: not the hardware's bits */
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = ff_simd_detected() >= FF_SIMD_AVX512 && __builtin_cpu_supports("avx512bf16");
    }
    return has;
#else
    return 0;
#endif
}

/* The best path the tests allow (ff_bf16_limit): below the CPU's best, they
 * reach the paths other CPUs take (AVX512-BF16 without AMX: Zen 4/5; the
 * emulated AVX-512 one: Skylake to Ice Lake). */
static int g_bf16_limit = FF_BF16_AMX;

int ff_bf16_limit(const char *path) {
    static const char *names[] = {"emulated", "avx512_bf16", "amx"};
    for (int i = 0; i < 3; i++)
        if (strcmp(path, names[i]) == 0) return g_bf16_limit = i, 0;
    return -1;
}

const ff_gemm_arch_t *ff_gemm_arch_bf16(void) {
#if FF_X86
    const ff_simd_t s = ff_simd_active();
    if (s >= FF_SIMD_AVX512) {
#if FF_HAVE_AMX
        /* every CPU with AMX has AVX512-BF16 (the epilogue's rounding): checked all the same */
        if (g_bf16_limit >= FF_BF16_AMX && ff_cpu_has_amx() && ff_cpu_has_avx512_bf16()) return &g_amx;
#endif
        if (g_bf16_limit >= FF_BF16_AVX512 && ff_cpu_has_avx512_bf16()) return &g_avx512_bf16;
        return &g_emulated_avx512;
    }
    if (s >= FF_SIMD_AVX2) return &g_emulated_avx2;
#endif
    return &g_emulated_generic;
}

const char *ff_bf16_path(void) {
    const ff_gemm_arch_t *ar = ff_gemm_arch_bf16();
    return ar->kpack == 1 ? "emulated" : ar->name;
}

int ff_bgemm_stored(int storage, int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const void *A,
                    size_t lda, size_t stride_a, const void *B, size_t ldb, size_t stride_b, float beta, void *C,
                    size_t ldc, size_t stride_c, const float *bias, ff_activation_t act, size_t batch) {
    return ff_gemm_batched_arch(ff_gemm_arch_bf16(), storage, trans_a, trans_b, m, n, k, alpha, A, lda, stride_a, B,
                                ldb, stride_b, beta, C, ldc, stride_c, bias, act, batch);
}

int ff_bgemm_batched(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *A,
                     size_t lda, size_t stride_a, const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                     size_t ldc, size_t stride_c, const float *bias, ff_activation_t act, size_t batch) {
    return ff_bgemm_stored(0, trans_a, trans_b, m, n, k, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc,
                           stride_c, bias, act, batch);
}

int ff_gemm(int bf16, int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *A,
            size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc, const float *bias,
            ff_activation_t act) {
    return (bf16 ? ff_bgemm_batched : ff_sgemm_batched)(trans_a, trans_b, m, n, k, alpha, A, lda, 0, B, ldb, 0,
                                                        beta, C, ldc, 0, bias, act, 1);
}
