/* Vector math on the simd/ operations, for every instruction set at once;
 * included by each instruction set's header.
 *
 * ffv_exp: expf to about 1 ulp on [-87.3, 88.7]; 0 below (the denormal range
 * is flushed, an absolute error under 1.2e-38), +inf above, NaN kept.
 * exp(x) = 2^n * e^r with n = round(x / ln2), r = x - n ln2 in two steps
 * (Cody-Waite, ln2 split so n * LN2_HI is exact), e^r by its degree-7 Taylor
 * polynomial (truncation 5e-9 relative on |r| <= ln2/2). */
#define FF_EXP_LO -87.33654f /* below: exp < FLT_MIN, flushed to 0 */
#define FF_EXP_HI 88.72283f  /* above: exp > FLT_MAX */
#define FF_LOG2E 1.44269504088896341f
#define FF_LN2_HI 0.693359375f
#define FF_LN2_LO -2.12194440e-4f

/* r[0..W) rows in, columns out: r[j] becomes column j. */
static inline void ffv_transpose(ffv r[FFV_W]) {
    ffv a[FFV_W], b[FFV_W];
    for (int i = 0; i < FFV_W / 2; i++) {
        a[2 * i] = ffv_unpacklo(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = ffv_unpackhi(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < FFV_W / 4; g++) {
        b[4 * g + 0] = ffv_unpacklo2(a[4 * g], a[4 * g + 2]);
        b[4 * g + 1] = ffv_unpackhi2(a[4 * g], a[4 * g + 2]);
        b[4 * g + 2] = ffv_unpacklo2(a[4 * g + 1], a[4 * g + 3]);
        b[4 * g + 3] = ffv_unpackhi2(a[4 * g + 1], a[4 * g + 3]);
    }
    ffv_transpose_lanes(r, b);
}

/* The largest of x[0..n) (-inf for n = 0). */
static inline float ffv_max_row(const float *x, size_t n) {
    const ffv ninf = ffv_set1(-INFINITY);
    ffv vmax = ninf;
    for (size_t j = 0; j < n; j += FFV_W) {
        ffv_lanes t = ffv_first(n - j);
        vmax = ffv_max(vmax, ffv_select(t, ffv_ld(x + j, t), ninf));
    }
    return ffv_hmax(vmax);
}

/* x[0..n) *= s. */
static inline void ffv_scale_row(float *x, size_t n, float s) {
    const ffv vs = ffv_set1(s);
    for (size_t j = 0; j < n; j += FFV_W) {
        ffv_lanes t = ffv_first(n - j);
        ffv_st(x + j, t, ffv_mul(ffv_ld(x + j, t), vs));
    }
}

static inline ffv ffv_exp(ffv x) {
    ffv n = ffv_round(ffv_mul(x, ffv_set1(FF_LOG2E)));
    ffv r = ffv_fnmadd(n, ffv_set1(FF_LN2_HI), x);
    r = ffv_fnmadd(n, ffv_set1(FF_LN2_LO), r);
    ffv p = ffv_set1(1.0f / 5040.0f);
    p = ffv_fmadd(p, r, ffv_set1(1.0f / 720.0f));
    p = ffv_fmadd(p, r, ffv_set1(1.0f / 120.0f));
    p = ffv_fmadd(p, r, ffv_set1(1.0f / 24.0f));
    p = ffv_fmadd(p, r, ffv_set1(1.0f / 6.0f));
    p = ffv_fmadd(p, r, ffv_set1(0.5f));
    p = ffv_fmadd(p, r, ffv_set1(1.0f));
    p = ffv_fmadd(p, r, ffv_set1(1.0f));
    ffv y = ffv_mul_exp2(p, n);
    y = ffv_select(ffv_lt(x, ffv_set1(FF_EXP_LO)), ffv_zero(), y);
    return ffv_select(ffv_gt(x, ffv_set1(FF_EXP_HI)), ffv_set1(__builtin_inff()), y);
}

/* Exact GELU, x * Phi(x) = 0.5 x erfc(-x / sqrt 2): the GEMM's fused
 * epilogue and ops.gelu_forward alike. erfc is the Chebyshev fit of
 * Numerical Recipes (erfcc: t = 1 / (1 + |z| / 2), erfc(|z|) =
 * t exp(-z^2 + P(t)), fractional error < 1.2e-7 for every z) in float32
 * arithmetic with ffv_exp: about 1e-6 relative to Phi, ~30x faster than
 * calling erfcf per element. NaN stays NaN. */
static inline ffv ffv_gelu(ffv x) {
    const ffv z = ffv_mul(x, ffv_set1(-0.70710678118654752f));
    const ffv az = ffv_abs(z);
    const ffv t = ffv_div(ffv_set1(1.0f), ffv_fmadd(az, ffv_set1(0.5f), ffv_set1(1.0f)));
    static const float c[10] = {-1.26551223f, 1.00002368f, 0.37409196f, 0.09678418f, -0.18628806f,
                                0.27886807f,  -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};
    ffv p = ffv_set1(c[9]);
    for (int i = 8; i >= 0; i--) p = ffv_fmadd(p, t, ffv_set1(c[i]));
    const ffv e = ffv_mul(t, ffv_exp(ffv_fnmadd(az, az, p))); /* erfc(|z|) */
    const ffv erfc = ffv_select(ffv_lt(z, ffv_zero()), ffv_sub(ffv_set1(2.0f), e), e); /* erfc(-a) = 2 - erfc(a) */
    return ffv_mul(ffv_mul(x, ffv_set1(0.5f)), erfc);
}
