/* The vector operations that are one intrinsic of the same name at every x86
 * width: simd/avx2.h and simd/avx512.h each define ffv, ffvd and
 *   FFV_PS(op): the width's _mm*_<op>_ps,  FFV_PD(op): its _mm*_<op>_pd
 * and include this inside their target region. */

static inline ffv ffv_zero(void) { return FFV_PS(setzero)(); }
static inline ffv ffv_set1(float a) { return FFV_PS(set1)(a); }
static inline ffv ffv_load(const float *p) { return FFV_PS(loadu)(p); }
static inline void ffv_store(float *p, ffv v) { FFV_PS(storeu)(p, v); }

static inline ffv ffv_add(ffv a, ffv b) { return FFV_PS(add)(a, b); }
static inline ffv ffv_sub(ffv a, ffv b) { return FFV_PS(sub)(a, b); }
static inline ffv ffv_mul(ffv a, ffv b) { return FFV_PS(mul)(a, b); }
static inline ffv ffv_div(ffv a, ffv b) { return FFV_PS(div)(a, b); }
static inline ffv ffv_max(ffv a, ffv b) { return FFV_PS(max)(a, b); }
static inline ffv ffv_min(ffv a, ffv b) { return FFV_PS(min)(a, b); }
static inline ffv ffv_sqrt(ffv a) { return FFV_PS(sqrt)(a); }
static inline ffv ffv_fmadd(ffv a, ffv b, ffv c) { return FFV_PS(fmadd)(a, b, c); }   /* a*b + c */
static inline ffv ffv_fmsub(ffv a, ffv b, ffv c) { return FFV_PS(fmsub)(a, b, c); }   /* a*b - c */
static inline ffv ffv_fnmadd(ffv a, ffv b, ffv c) { return FFV_PS(fnmadd)(a, b, c); } /* c - a*b */

/* Interleaves within 128-bit lanes, of floats and of float pairs (transposes). */
static inline ffv ffv_unpacklo(ffv a, ffv b) { return FFV_PS(unpacklo)(a, b); }
static inline ffv ffv_unpackhi(ffv a, ffv b) { return FFV_PS(unpackhi)(a, b); }
static inline ffv ffv_unpacklo2(ffv a, ffv b) {
    return FFV_PS(castpd)(FFV_PD(unpacklo)(FFV_PD(castps)(a), FFV_PD(castps)(b)));
}
static inline ffv ffv_unpackhi2(ffv a, ffv b) {
    return FFV_PS(castpd)(FFV_PD(unpackhi)(FFV_PD(castps)(a), FFV_PD(castps)(b)));
}

/* Doubles: ffvd holds half an ffv's lanes, for leaves that finish in double. */
static inline ffvd ffvd_set1(double a) { return FFV_PD(set1)(a); }
static inline ffvd ffvd_add(ffvd a, ffvd b) { return FFV_PD(add)(a, b); }
static inline ffvd ffvd_sub(ffvd a, ffvd b) { return FFV_PD(sub)(a, b); }
static inline ffvd ffvd_mul(ffvd a, ffvd b) { return FFV_PD(mul)(a, b); }
static inline ffvd ffvd_div(ffvd a, ffvd b) { return FFV_PD(div)(a, b); }
