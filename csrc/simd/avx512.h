/* The vector vocabulary for AVX-512 (F, BW, DQ, VL), 16 float lanes with lane
 * sets in mask registers, and the compiler of kernel bodies for it: the same
 * operations and use as simd/avx2.h (see there). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

#ifdef FFV_BF16_HARDWARE /* a body for CPUs with AVX512-BF16: vcvtneps2bf16 rounds to bf16 */
FF_TARGET_AVX512BF16_BEGIN
#define FFV_FN(name) name##_avx512bf16
#else
FF_TARGET_AVX512_BEGIN
#define FFV_FN(name) name##_avx512
#endif

#define FFV_W 16

typedef __m512 ffv;
typedef __m512d ffvd; /* half an ffv's lanes, for leaves that finish in double */
#define FFV_PS(op) _mm512_##op##_ps
#define FFV_PD(op) _mm512_##op##_pd
#include "simd/x86_ops.h"
typedef __m512i ffv_int;
typedef __mmask16 ffv_lanes;

static inline ffv_lanes ffv_first(size_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }
/* Whole vectors use plain instructions: masked memory operations are slower
 * on AMD Zen 4/5 even with every lane set. */
static inline ffv ffv_ld(const float *p, ffv_lanes t) {
    return t == (__mmask16)0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(t, p);
}
static inline void ffv_st(float *p, ffv_lanes t, ffv v) {
    if (t == (__mmask16)0xFFFF) _mm512_storeu_ps(p, v);
    else _mm512_mask_storeu_ps(p, t, v);
}
static inline ffv ffv_keep(ffv_lanes t, ffv v) { return _mm512_maskz_mov_ps(t, v); }
static inline ffv ffv_select(ffv_lanes t, ffv a, ffv b) { return _mm512_mask_mov_ps(b, t, a); }
static inline ffv_lanes ffv_lanes_where_zero(ffv_lanes t, const uint8_t *m) {
    __m128i b = t == (__mmask16)0xFFFF ? _mm_loadu_si128((const __m128i *)m) : _mm_maskz_loadu_epi8(t, m);
    return t & (__mmask16)~_mm_test_epi8_mask(b, b);
}
static inline ffv_lanes ffv_lt(ffv a, ffv b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline ffv_lanes ffv_gt(ffv a, ffv b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
static inline unsigned ffv_lanes_bits(ffv_lanes t) { return (unsigned)t; }
static inline ffv_lanes ffv_eq(ffv a, ffv b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }

static inline ffv ffv_abs(ffv a) { return _mm512_abs_ps(a); }
static inline ffv ffv_round(ffv a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline ffv ffv_mul_exp2(ffv p, ffv n) { return _mm512_scalef_ps(p, n); }

/* Sum: halves, then simd/avx2.h's order. Max: GCC's _mm512_reduce_max_ps. */
static inline float ffv_hsum(ffv v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float ffv_hmax(ffv v) { return _mm512_reduce_max_ps(v); }

static inline ffvd ffv_lo_to_d(ffv v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
static inline ffvd ffv_hi_to_d(ffv v) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)); }
static inline ffv ffv_from_d(ffvd lo, ffvd hi) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
}

static inline void ffv_store_first(float *p, size_t n, ffv v) { ffv_st(p, ffv_first(n), v); }

static inline void ffv_transpose_lanes(ffv r[16], const ffv b[16]) {
    for (int c = 0; c < 4; c++) {
        __m512 e = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88), f = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xDD);
        __m512 g = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88), h = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(e, g, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(e, g, 0xDD);
        r[4 + c] = _mm512_shuffle_f32x4(f, h, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(f, h, 0xDD);
    }
}

/* The bf16 values nearest x's (ties to even, NaN kept quiet), 16 bits each. */
static inline __m256i ffv_to_bf16_soft(ffv x) {
    const __m512i u = _mm512_castps_si512(x), top = _mm512_srli_epi32(u, 16);
    const __m512i lsb = _mm512_and_si512(top, _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_cvtepi32_epi16(_mm512_mask_or_epi32(r, nan, top, _mm512_set1_epi32(0x40)));
}
static inline __m256i ffv_to_bf16(ffv x) {
#if defined(FFV_BF16_HARDWARE) && !defined(FF_EMULATE_AVX512)
    /* vcvtneps2bf16 rounds the same but flushes subnormal x to zero: those
     * (rare) lanes take the software's value. */
    const __m512i u = _mm512_castps_si512(x);
    const __mmask16 subnormal = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000)) &
                                _mm512_test_epi32_mask(u, _mm512_set1_epi32(0x007fffff));
    const __m256i hard = (__m256i)_mm512_cvtneps_pbh(x);
    if (__builtin_expect(subnormal == 0, 1)) return hard;
    return _mm256_mask_mov_epi16(hard, subnormal, ffv_to_bf16_soft(x));
#else
    return ffv_to_bf16_soft(x);
#endif
}
/* The same in the low halves of 32-bit lanes. */
static inline __m512i ffv_bf16_bits(ffv x) { return _mm512_cvtepu16_epi32(ffv_to_bf16(x)); }
/* x rounded to bf16, kept as a float. */
static inline ffv ffv_round_bf16(ffv x) { return _mm512_castsi512_ps(_mm512_slli_epi32(ffv_bf16_bits(x), 16)); }
/* A vector of bf16 values (uint16_t) as floats; x rounded to bf16 values. */
static inline ffv ffv_load_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
static inline void ffv_store_bf16(uint16_t *p, ffv x) { _mm256_storeu_si256((__m256i *)p, ffv_to_bf16(x)); }

#include "simd/math.h"
#include FFV_BODY

FF_TARGET_END
#endif
