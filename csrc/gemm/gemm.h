/* Single-precision GEMM with a fused epilogue:
 *
 *     C = act(alpha * op(A) @ op(B) + beta * C + bias)
 *
 * op(X) is X or X^T (trans_* != 0). All matrices are row-major with leading
 * dimensions lda/ldb/ldc (elements between consecutive rows as stored).
 * op(A) is (m,k), op(B) is (k,n), C is (m,n), bias is (n,) or NULL.
 * beta == 0 never reads C (it may hold NaN garbage). GELU is the exact erf form.
 *
 * Goto/BLIS structure: a register micro-kernel per instruction set, packing of
 * A into MR-row panels and of B into NR-column panels (transposes are absorbed
 * by packing), MC/KC/NC cache blocking. Threads split only the jc/ic/jr loops
 * (and the batch); the k loop is never split and the blocking never depends on
 * the thread count, so results are bitwise identical for any thread count.
 * Called from inside another parallel region, it runs single-threaded.
 * Pack buffers are per thread (thread-local, grown on demand, 64-byte aligned),
 * so concurrent callers never share them.
 *
 * Both return 0, or -1 if a pack buffer could not be allocated (C untouched). */
#ifndef FF_GEMM_H
#define FF_GEMM_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    FF_ACT_NONE = 0,
    FF_ACT_RELU = 1,
    FF_ACT_GELU = 2,
} ff_activation_t;

int ff_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *A, size_t lda,
             const float *B, size_t ldb, float beta, float *C, size_t ldc, const float *bias, ff_activation_t act);

/* `batch` independent products; item b uses A + b*stride_a, B + b*stride_b,
 * C + b*stride_c and the same bias. One parallel region for the whole batch. */
int ff_sgemm_batched(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *A,
                     size_t lda, size_t stride_a, const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                     size_t ldc, size_t stride_c, const float *bias, ff_activation_t act, size_t batch);

/* The same with bf16 inputs (gemm_bf16.c): every element of op(A) and op(B)
 * rounded to bfloat16 (nearest even), products summed in fp32; bitwise the
 * same for any thread count. ff_bf16_path() names the path it takes on this
 * CPU under the active SIMD level: "amx", "avx512_bf16" or "emulated". */
int ff_bgemm_batched(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *A,
                     size_t lda, size_t stride_a, const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                     size_t ldc, size_t stride_c, const float *bias, ff_activation_t act, size_t batch);

/* ff_bgemm_batched on matrices stored in bf16: with FF_GEMM_A_BF16 in
 * `storage`, A holds bf16 values (uint16_t, the top halves of float32s)
 * instead of floats, likewise B with FF_GEMM_B_BF16 and C with
 * FF_GEMM_C_BF16; leading dimensions and strides count elements. Stored A
 * and B give the bits of their float32 values (which the rounding keeps as
 * they are) at half the bytes read; a bf16 C gets the float32 result rounded
 * to bf16 (nearest even), and beta reads its values. */
enum { FF_GEMM_A_BF16 = 1, FF_GEMM_B_BF16 = 2, FF_GEMM_C_BF16 = 4 };
int ff_bgemm_stored(int storage, int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const void *A,
                    size_t lda, size_t stride_a, const void *B, size_t ldb, size_t stride_b, float beta, void *C,
                    size_t ldc, size_t stride_c, const float *bias, ff_activation_t act, size_t batch);

/* dst[i] = the bf16 value nearest src[i] (ties to even; NaN stays a quiet
 * NaN), stored as uint16_t, i < n: activations kept in bf16 for
 * ff_bgemm_stored. */
void ff_to_bf16(uint16_t *dst, const float *src, size_t n);

/* One product in fp32 (bf16 = 0, ff_sgemm) or in bf16 products (bf16 = 1). */
int ff_gemm(int bf16, int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *A,
            size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc, const float *bias,
            ff_activation_t act);

const char *ff_bf16_path(void);
int ff_cpu_has_avx512_bf16(void);
/* The CPU has AMX-BF16 and the OS granted this process the tile state. */
int ff_cpu_has_amx(void);
/* Whether this build has the kernel of a hardware path ("amx": x86-64 Linux;
 * "avx512_bf16": x86-64), the emulated AVX-512 test build neither. */
int ff_bf16_path_built(const char *path);
/* For tests: the best bf16 path to take, "amx" (the default: the CPU's
 * best), "avx512_bf16" or "emulated"; 0, or -1 for another name. */
int ff_bf16_limit(const char *path);
/* x rounded to the nearest bfloat16, as a float. */
float ff_bf16_round(float x);

/* op(B) (k, n) packed once for many products (gemm_packed.c): the layout
 * depends on the active kernel, on k and on the number format only (bf16 != 0:
 * ff_bgemm_batched's inputs). ff_gemm_packed_floats(bf16, n, k) floats at dst,
 * 64-byte aligned; ff_gemm_packed_layout(bf16, k) names the layout, so a caller
 * can tell that a packed B no longer fits the active kernel. */
size_t ff_gemm_packed_floats(int bf16, size_t n, size_t k);
size_t ff_gemm_packed_layout(int bf16, size_t k);
void ff_gemm_pack_b(int bf16, int trans_b, size_t n, size_t k, const float *B, size_t ldb, float *dst);

/* C = act(alpha * A @ op(B) + beta * C + bias) with A (m, k) row-major and
 * Bp packed by ff_gemm_pack_b with the same bf16 under the same layout:
 * bitwise ff_sgemm's (bf16: ff_bgemm_batched's) result, without packing B. */
int ff_gemm_packed(int bf16, size_t m, size_t n, size_t k, float alpha, const float *A, size_t lda,
                   const float *Bp, float beta, float *C, size_t ldc, const float *bias, ff_activation_t act);

#endif
