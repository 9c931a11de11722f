/* LayerNorm's row leaves, written once for every instruction set: compiled by
 * layernorm_avx2.c and layernorm_avx512.c (see simd/avx2.h). Masked-off
 * lanes load as 0, so they add nothing to the sums, except (0 - mean)^2 in
 * the variance, which is masked explicitly. */

void FFV_FN(ff_ln_fwd_row)(float *y, float *mean, float *rstd, const float *x, const float *r, const float *w,
                           const float *b, size_t d, float eps) {
    const float *z = r ? y : x; /* z = x + r, kept in y until the last pass */
    ffv acc = ffv_zero();
    for (size_t j = 0; j < d; j += FFV_W) {
        ffv_lanes t = ffv_first(d - j);
        ffv v = ffv_ld(x + j, t);
        if (r) {
            v = ffv_add(v, ffv_ld(r + j, t));
            ffv_st(y + j, t, v);
        }
        acc = ffv_add(acc, v);
    }
    float m = ffv_hsum(acc) / (float)d;
    ffv vm = ffv_set1(m);
    acc = ffv_zero();
    for (size_t j = 0; j < d; j += FFV_W) {
        ffv_lanes t = ffv_first(d - j);
        ffv c = ffv_keep(t, ffv_sub(ffv_ld(z + j, t), vm));
        acc = ffv_fmadd(c, c, acc);
    }
    float rs = 1.0f / sqrtf(ffv_hsum(acc) / (float)d + eps);
    ffv vr = ffv_set1(rs);
    for (size_t j = 0; j < d; j += FFV_W) {
        ffv_lanes t = ffv_first(d - j);
        ffv xh = ffv_mul(ffv_sub(ffv_ld(z + j, t), vm), vr);
        ffv_st(y + j, t, ffv_fmadd(xh, ffv_ld(w + j, t), ffv_ld(b + j, t)));
    }
    *mean = m;
    *rstd = rs;
}

void FFV_FN(ff_ln_bwd_row)(float *dx, float *dw_acc, float *db_acc, const float *dy, const float *x, const float *r,
                           const float *w, float mean, float rstd, size_t d) {
    ffv vm = ffv_set1(mean), vr = ffv_set1(rstd);
    ffv sg = ffv_zero(), sgx = ffv_zero();
    for (size_t j = 0; j < d; j += FFV_W) {
        ffv_lanes t = ffv_first(d - j);
        ffv z = ffv_ld(x + j, t);
        if (r) z = ffv_add(z, ffv_ld(r + j, t));
        ffv xh = ffv_mul(ffv_sub(z, vm), vr);
        ffv g = ffv_ld(dy + j, t);
        ffv gw = ffv_mul(g, ffv_ld(w + j, t));
        sg = ffv_add(sg, gw);
        sgx = ffv_fmadd(gw, xh, sgx); /* gw is 0 on masked-off lanes */
        ffv_st(dw_acc + j, t, ffv_fmadd(g, xh, ffv_ld(dw_acc + j, t)));
        ffv_st(db_acc + j, t, ffv_add(g, ffv_ld(db_acc + j, t)));
    }
    ffv mg = ffv_set1(ffv_hsum(sg) / (float)d);
    ffv mgx = ffv_set1(ffv_hsum(sgx) / (float)d);
    for (size_t j = 0; j < d; j += FFV_W) {
        ffv_lanes t = ffv_first(d - j);
        ffv z = ffv_ld(x + j, t);
        if (r) z = ffv_add(z, ffv_ld(r + j, t));
        ffv xh = ffv_mul(ffv_sub(z, vm), vr);
        ffv gw = ffv_mul(ffv_ld(dy + j, t), ffv_ld(w + j, t));
        ffv_st(dx + j, t, ffv_mul(vr, ffv_fnmadd(xh, mgx, ffv_sub(gw, mg))));
    }
}
