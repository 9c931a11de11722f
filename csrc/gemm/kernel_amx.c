/* AMX micro-kernel (Intel Sapphire Rapids on): bf16 pairs multiplied on the
 * tile unit with tdpbf16ps, summed in fp32.
 *
 * C's 32x32 tile lives in four 16x16 fp32 tiles (tmm0-3); each 32 k take two
 * A tiles (tmm4-5: 16 rows x 16 pair slots, from the pack_a_amx layout) and
 * two B tiles (tmm6-7: 16 pair slots x 16 columns, rows of the [ks][32] pair
 * panel, 128 bytes apart), then four tdpbf16ps of 16x16x32 each. Panels are
 * padded to whole 32 k (kgrain) with zeros, so one tile shape serves all.
 *
 * The epilogue is the AVX-512 fp32 kernel's (epilogue_simd.h, rounding a
 * bf16 C with vcvtneps2bf16), on the tile stored to a buffer, so every
 * element sees the same instructions wherever its tile starts.
 *
 * Tile state is per thread: ff_gemm_amx_begin loads the configuration before
 * a thread's first kernel call of a product, ff_gemm_amx_end releases it
 * (the driver calls both), so other tile users in the process (oneDNN) can
 * configure their own in between. */
#include <stdint.h>

#include "gemm/gemm_internal.h"
#include "runtime/fma_peak.h"
#include "runtime/runtime.h"
#include "runtime/simd_target.h"

#if FF_HAVE_AMX
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MR FF_GEMM_AMX_MR
#define NR FF_GEMM_AMX_NR

/* GCC's tile intrinsics are asm without a memory clobber: order them
 * against the plain loads and stores of the same buffers by hand. */
#define MEMORY_FENCE() __asm__ volatile("" ::: "memory")

/* Linux grants the tile data state per process, on request. */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* CPUID.7.0:EDX bits 22 (AMX-BF16) and 24 (AMX-TILE), the OS saving tile
 * state (XCR0 bits 17-18), and Linux letting this process use it. */
static int amx_usable(void) {
    unsigned a, b, c, d;
    if (ff_simd_detected() < FF_SIMD_AVX512 || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(d & (1u << 22)) || !(d & (1u << 24))) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0)); /* OSXSAVE: implied by AVX-512 being usable */
    if ((lo & (3u << 17)) != (3u << 17)) return 0;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

int ff_cpu_has_amx(void) {
    static int has = -1;
    if (has < 0) has = amx_usable();
    return has;
}

FF_TARGET_AMX_BEGIN

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config_t;

/* Palette 1, all eight tiles 16 rows x 64 bytes. A constant in memory: GCC's
 * ldtilecfg asm tells the compiler it reads 8 bytes, so stores of a local
 * configuration may not be there when it runs. */
static const tile_config_t g_config = {.palette = 1,
                                       .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
                                       .rows = {16, 16, 16, 16, 16, 16, 16, 16}};

void ff_gemm_amx_begin(void) { _tile_loadconfig(&g_config); }

void ff_gemm_amx_end(void) { _tile_release(); }

/* tmm0-3 = A_panel @ B_panel over ks slots (a multiple of 16), into t ([MR][NR]). */
static void tile_product(size_t ks, const float *a, const float *b, float *t) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (size_t s = 0; s < ks; s += 16) {
        _tile_stream_loadd(4, a, 64); /* A is read once per call: kept out of L1, where B stays */
        _tile_stream_loadd(5, a + 16 * 16, 64);
        _tile_loadd(6, b, NR * sizeof(float));
        _tile_loadd(7, b + 16, NR * sizeof(float));
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
        a += MR * 16;
        b += 16 * NR;
    }
    const size_t stride = NR * sizeof(float);
    _tile_stored(0, t, stride);
    _tile_stored(1, t + 16, stride);
    _tile_stored(2, t + 16 * NR, stride);
    _tile_stored(3, t + 16 * NR + 16, stride);
    MEMORY_FENCE();
}

/* a: [ks/16][MR][16] pair slots (pack_a_amx), b: [ks][NR] (64-byte aligned).
 * The sum goes through a buffer, not straight between C and the tiles: 32
 * rows of C a page apart (ldc = 1024, 2048) share one L1 set, and tile loads
 * and stores of C there ran 2-4x slower than the row-wise epilogue. */
void ff_gemm_kernel_amx(size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t mr, size_t nr,
                        const ff_gemm_epi_t *epi) {
    float t[MR * NR] __attribute__((aligned(64)));
    const size_t ldp = ff_gemm_c_prefetch_ld(ldc, epi);
    /* C into L2 while the tiles work; a product of 128 k or less is done
     * before the lines come (bench gemm's per-head shapes: 3-10% faster
     * without, 4096x1536x512 10% slower) */
    for (size_t i = 0; kc > 128 && i < mr; i++)
        __builtin_prefetch(c + i * ldp, 0, 2), __builtin_prefetch(c + i * ldp + NR - 1, 0, 2);
    tile_product((kc + 31) / 32 * 16, a, b, t);
    if (nr == NR) {
        ff_gemm_store_rows_avx512bf16(t, c, ldc, mr, epi);
        return;
    }
    for (size_t r = 0; r < mr; r += FF_GEMM_AVX512_MR) /* the fp32 tile's edge path, 12 rows at a time */
        ff_gemm_store_avx512bf16(t + r * NR, ff_gemm_c_row(c, ldc, r, epi), ldc,
                                 mr - r < FF_GEMM_AVX512_MR ? mr - r : FF_GEMM_AVX512_MR, nr, epi);
}

/* The peak leaf (runtime/fma_peak.h): the kernel's four accumulating
 * tdpbf16ps (16x16x32 multiply-adds each) on tiles that stay loaded. The
 * operands are loaded values: on operands left by _tile_zero the unit ran
 * 2-2.5x as fast as on any loaded data (Xeon, 2026-12-06), a peak no product
 * can reach. */
float ff_fma_peak_amx(size_t iters, double *flops) {
    uint16_t operand[16 * 32] __attribute__((aligned(64)));
    for (size_t i = 0; i < 16 * 32; i++) operand[i] = (uint16_t)(0x3f80u + (i * 37u & 0x7fu)); /* 1 .. 2 */
    MEMORY_FENCE();
    ff_gemm_amx_begin();
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, operand, 64);
    _tile_loadd(5, operand, 64);
    _tile_loadd(6, operand, 64);
    _tile_loadd(7, operand, 64);
    for (size_t i = 0; i < iters; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    float t[16 * 16] __attribute__((aligned(64)));
    _tile_stored(0, t, 64);
    MEMORY_FENCE();
    ff_gemm_amx_end();
    *flops = (double)iters * 4 * 16 * 16 * 32 * 2;
    return t[0];
}

FF_TARGET_END

#else

int ff_cpu_has_amx(void) { return 0; }

#endif
