/* The vector vocabulary for AVX2+FMA, 8 float lanes, and the compiler of
 * kernel bodies for it. A body (a file of leaves written once against ffv,
 * ffv_lanes and the ffv_* operations, naming its functions FFV_FN(name)) is
 * compiled for AVX2 by a file that says
 *
 *     #define FFV_BODY "nn/softmax_simd.h"
 *     #include "simd/avx2.h"
 *
 * and for AVX-512 by one that includes simd/avx512.h instead: the body comes
 * out as name_avx2 and name_avx512, inside this set's target region, and as
 * nothing off x86 (FF_SIMD_PICK in runtime/runtime.h then picks name_generic). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "runtime/simd_target.h"

#if FF_X86
#include <immintrin.h>

FF_TARGET_AVX2_BEGIN

#define FFV_W 8
#define FFV_FN(name) name##_avx2

typedef __m256 ffv;
typedef __m256d ffvd; /* half an ffv's lanes, for leaves that finish in double */
#define FFV_PS(op) _mm256_##op##_ps
#define FFV_PD(op) _mm256_##op##_pd
#include "simd/x86_ops.h"
typedef __m256i ffv_int;
/* A set of lanes: the bit mask, and for a set from ffv_first its lane count
 * (whole vectors load and store with plain instructions); 0 for other sets. */
typedef struct {
    __m256i bits;
    unsigned len;
} ffv_lanes;

/* The lanes of the next min(n, 8) elements. */
static inline ffv_lanes ffv_first(size_t n) {
    if (n >= 8) return (ffv_lanes){_mm256_set1_epi32(-1), 8};
    return (ffv_lanes){_mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), (unsigned)n};
}
/* Loads give 0 outside the lanes; stores leave memory there untouched. */
static inline ffv ffv_ld(const float *p, ffv_lanes t) { return t.len == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, t.bits); }
static inline void ffv_st(float *p, ffv_lanes t, ffv v) {
    if (t.len == 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, t.bits, v);
}
/* v on the lanes, 0 elsewhere; a on the lanes, b elsewhere. */
static inline ffv ffv_keep(ffv_lanes t, ffv v) { return _mm256_and_ps(v, _mm256_castsi256_ps(t.bits)); }
static inline ffv ffv_select(ffv_lanes t, ffv a, ffv b) { return _mm256_blendv_ps(b, a, _mm256_castsi256_ps(t.bits)); }
/* The lanes of t (a set from ffv_first) whose byte in m is 0. */
static inline ffv_lanes ffv_lanes_where_zero(ffv_lanes t, const uint8_t *m) {
    uint64_t b8 = 0;
    memcpy(&b8, m, t.len); /* bytes past t's lanes may lie past the row */
    __m256i b = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)b8));
    return (ffv_lanes){_mm256_and_si256(_mm256_cmpeq_epi32(b, _mm256_setzero_si256()), t.bits), 0};
}
static inline ffv_lanes ffv_lt(ffv a, ffv b) { return (ffv_lanes){_mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_LT_OQ)), 0}; }
static inline ffv_lanes ffv_gt(ffv a, ffv b) { return (ffv_lanes){_mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_GT_OQ)), 0}; }
/* Lane i of t as bit i. */
static inline unsigned ffv_lanes_bits(ffv_lanes t) { return (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(t.bits)); }
static inline ffv_lanes ffv_eq(ffv a, ffv b) { return (ffv_lanes){_mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_EQ_OQ)), 0}; }

static inline ffv ffv_abs(ffv a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline ffv ffv_round(ffv a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

/* p * 2^n for integral n in [-252, 254] (the range exp needs): two exact
 * power-of-two factors, since one 2^n is no float at n = 128. */
static inline ffv ffv_mul_exp2(ffv p, ffv n) {
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i half = _mm256_srai_epi32(ni, 1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* Horizontal sum and max, each in one fixed order (halves, then pairs). */
static inline float ffv_hsum(ffv v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float ffv_hmax(ffv v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline ffvd ffv_lo_to_d(ffv v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
static inline ffvd ffv_hi_to_d(ffv v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
static inline ffv ffv_from_d(ffvd lo, ffvd hi) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1);
}

/* The first n lanes of v to p (n >= 8: all), in plain stores: AMD's masked
 * stores are slow. */
static inline void ffv_store_first(float *p, size_t n, ffv v) {
    if (n >= 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    __m128 h = _mm256_castps256_ps128(v);
    if (n >= 4) {
        _mm_storeu_ps(p, h);
        h = _mm256_extractf128_ps(v, 1);
        p += 4, n -= 4;
    }
    if (n >= 2) {
        _mm_storel_pi((__m64 *)p, h);
        h = _mm_movehl_ps(h, h);
        p += 2, n -= 2;
    }
    if (n) _mm_store_ss(p, h);
}

/* Transposes (simd/math.h's ffv_transpose): interleaves within 128-bit
 * lanes, of 32-bit and of 64-bit elements, then the lanes themselves:
 * b[4g+c], 128-bit lane l, holds column 4l+c of rows 4g..4g+3. */
static inline void ffv_transpose_lanes(ffv r[8], const ffv b[8]) {
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(b[c], b[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(b[c], b[4 + c], 0x31);
    }
}

/* x rounded to bf16, kept as a float: nearest even, NaN kept quiet. */
static inline ffv ffv_round_bf16(ffv x) {
    const __m256i u = _mm256_castps_si256(x), top = _mm256_set1_epi32((int)0xffff0000u);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_and_si256(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), top);
    const __m256i nan = _mm256_or_si256(_mm256_and_si256(u, top), _mm256_set1_epi32(0x400000));
    return _mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(nan), _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* A vector of bf16 values (uint16_t) as floats; x rounded to bf16 values. */
static inline ffv ffv_load_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
static inline void ffv_store_bf16(uint16_t *p, ffv x) {
    const __m256i top = _mm256_srli_epi32(_mm256_castps_si256(ffv_round_bf16(x)), 16);
    /* packus works within 128-bit lanes: the two halves' four values, then the lanes side by side */
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(top, top), 0x08);
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(packed));
}

#include "simd/math.h"
#include FFV_BODY

FF_TARGET_END
#endif
