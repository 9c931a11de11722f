/* Test build only (FASTFORMER_EMULATE_AVX512=1 in setup.py): run the AVX-512
 * kernels on a CPU without AVX-512, so that every SIMD path is tested on any
 * x86-64 machine with AVX2. The build force-includes this header before each
 * file; it declares the real intrinsics first (so later <immintrin.h> includes
 * are no-ops), then maps every _mm512_* name onto SIMDe's portable versions,
 * which give IEEE-identical results lane by lane. The few intrinsics SIMDe
 * lacks or gets wrong follow: reductions in GCC's own lane order, so the
 * emulated bits equal the hardware's, and masked loads and stores that touch
 * only the selected lanes (SIMDe's write zeros to the others). */
#ifndef FF_EMULATE_AVX512_H
#define FF_EMULATE_AVX512_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

static inline __m256 ff_emu_cvtpd_ps(simde__m512d a) {
    double d[8];
    float f[8];
    simde_mm512_storeu_pd(d, a);
    for (int i = 0; i < 8; i++) f[i] = (float)d[i];
    return _mm256_loadu_ps(f);
}

static inline simde__m512d ff_emu_cvtps_pd(__m256 a) {
    float f[8];
    double d[8];
    _mm256_storeu_ps(f, a);
    for (int i = 0; i < 8; i++) d[i] = (double)f[i];
    return simde_mm512_loadu_pd(d);
}

static inline __m256i ff_emu_cvtepi32_epi16(simde__m512i a) {
    int32_t w[16];
    int16_t h[16];
    simde_mm512_storeu_si512(w, a);
    for (int i = 0; i < 16; i++) h[i] = (int16_t)w[i]; /* vpmovdw truncates */
    return _mm256_loadu_si256((const __m256i *)h);
}

/* GCC's order: upper 256 op lower 256, then upper 128 op lower 128, then pairs. */
static inline float ff_emu_reduce_add_ps(simde__m512 a) {
    float v[16];
    simde_mm512_storeu_ps(v, a);
    __m256 t = _mm256_add_ps(_mm256_loadu_ps(v + 8), _mm256_loadu_ps(v));
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t));
    s = _mm_add_ps(s, _mm_shuffle_ps(s, s, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_cvtss_f32(s) + _mm_cvtss_f32(_mm_shuffle_ps(s, s, 1));
}

static inline float ff_emu_reduce_max_ps(simde__m512 a) {
    float v[16];
    simde_mm512_storeu_ps(v, a);
    __m256 t = _mm256_max_ps(_mm256_loadu_ps(v + 8), _mm256_loadu_ps(v));
    __m128 s = _mm_max_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t));
    s = _mm_max_ps(s, _mm_shuffle_ps(s, s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_max_ps(s, _mm_shuffle_ps(s, s, _MM_SHUFFLE(0, 1, 0, 1)));
    return _mm_cvtss_f32(s);
}

static inline double ff_emu_reduce_add_pd(simde__m512d a) {
    double v[8];
    simde_mm512_storeu_pd(v, a);
    __m256d t = _mm256_add_pd(_mm256_loadu_pd(v + 4), _mm256_loadu_pd(v));
    __m128d s = _mm_add_pd(_mm256_extractf128_pd(t, 1), _mm256_castpd256_pd128(t));
    return _mm_cvtsd_f64(s) + _mm_cvtsd_f64(_mm_unpackhi_pd(s, s));
}

static inline simde__m512 ff_emu_maskz_loadu_ps(uint16_t k, const void *p) {
    float v[16] = {0};
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) memcpy(v + i, (const float *)p + i, sizeof(float));
    return simde_mm512_loadu_ps(v);
}

static inline void ff_emu_mask_storeu_32(void *p, uint16_t k, const void *lanes) {
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) memcpy((char *)p + 4 * i, (const char *)lanes + 4 * i, 4);
}

static inline void ff_emu_mask_storeu_ps(void *p, uint16_t k, simde__m512 a) {
    float v[16];
    simde_mm512_storeu_ps(v, a);
    ff_emu_mask_storeu_32(p, k, v);
}

static inline void ff_emu_mask_storeu_epi32(void *p, uint16_t k, simde__m512i a) {
    int32_t v[16];
    simde_mm512_storeu_si512(v, a);
    ff_emu_mask_storeu_32(p, k, v);
}

static inline __m128i ff_emu_maskz_loadu_epi8(uint16_t k, const void *p) {
    int8_t b[16] = {0};
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) memcpy(b + i, (const int8_t *)p + i, 1);
    return _mm_loadu_si128((const __m128i *)b);
}

static inline __m128i ff_emu_maskz_set1_epi8(uint16_t k, char c) {
    int8_t b[16];
    for (int i = 0; i < 16; i++) b[i] = k >> i & 1 ? c : 0;
    return _mm_loadu_si128((const __m128i *)b);
}

static inline uint16_t ff_emu_test_epi8_mask(__m128i a, __m128i b) {
    return (uint16_t)_mm_movemask_epi8(_mm_xor_si128(_mm_cmpeq_epi8(_mm_and_si128(a, b), _mm_setzero_si128()),
                                                     _mm_set1_epi8(-1)));
}

#undef _mm512_reduce_max_ps
#undef _mm512_maskz_loadu_ps
#undef _mm512_mask_storeu_ps
#undef _mm512_mask_storeu_epi32
#define _mm512_maskz_loadu_ps(k, p) ff_emu_maskz_loadu_ps(k, p)
#define _mm512_mask_storeu_ps(p, k, a) ff_emu_mask_storeu_ps(p, k, a)
#define _mm512_mask_storeu_epi32(p, k, a) ff_emu_mask_storeu_epi32(p, k, a)
#define _mm512_cvtpd_ps(a) ff_emu_cvtpd_ps(a)
#define _mm512_cvtps_pd(a) ff_emu_cvtps_pd(a)
#define _mm512_cvtepi32_epi16(a) ff_emu_cvtepi32_epi16(a)
#define _mm512_reduce_add_ps(a) ff_emu_reduce_add_ps(a)
#define _mm512_reduce_max_ps(a) ff_emu_reduce_max_ps(a)
#define _mm512_reduce_add_pd(a) ff_emu_reduce_add_pd(a)
#define _mm_maskz_loadu_epi8(k, p) ff_emu_maskz_loadu_epi8(k, p)
#define _mm_maskz_set1_epi8(k, c) ff_emu_maskz_set1_epi8(k, c)
#define _mm_test_epi8_mask(a, b) ff_emu_test_epi8_mask(a, b)

#endif
