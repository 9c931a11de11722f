/* The beam search's row leaves on SIMD: compiled for AVX2 by
 * beam_topk_avx2.c (see simd/avx2.h), which AVX-512 shares (a scan of the
 * vocabulary is memory-bound). */

float FFV_FN(ff_row_lse)(const float *x, size_t V) {
    float m = ffv_max_row(x, V);
    ffv vm = ffv_set1(m), se = ffv_zero();
    for (size_t j = 0; j < V; j += FFV_W) {
        ffv_lanes k = ffv_first(V - j);
        se = ffv_add(se, ffv_keep(k, ffv_exp(ffv_sub(ffv_ld(x + j, k), vm))));
    }
    return m + logf(ffv_hsum(se));
}

/* W logits at a time against the list's threshold; the few that pass are
 * inserted one by one, with the same float arithmetic as the generic scan. */
void FFV_FN(ff_topk_scan)(float *top_s, int64_t *top_i, size_t *count, size_t N, const float *x, size_t V,
                          float score, float lse, int64_t base, int64_t blocked) {
    const ffv vs = ffv_set1(score), vl = ffv_set1(lse);
    size_t j = 0;
    for (; j + FFV_W <= V; j += FFV_W) {
        float thr = *count == N ? top_s[N - 1] : -INFINITY;
        ffv c = ffv_add(vs, ffv_sub(ffv_load(x + j), vl));
        unsigned bits = ffv_lanes_bits(ffv_gt(c, ffv_set1(thr)));
        if (*count < N) bits = (1u << FFV_W) - 1; /* the list is not full yet: every lane goes in */
        while (bits) {
            size_t v = j + (size_t)__builtin_ctz(bits);
            bits &= bits - 1;
            if ((int64_t)v == blocked) continue;
            ff_topk_insert(top_s, top_i, count, N, score + (x[v] - lse), base + (int64_t)v);
        }
    }
    for (; j < V; j++) {
        if ((int64_t)j == blocked) continue;
        ff_topk_insert(top_s, top_i, count, N, score + (x[j] - lse), base + (int64_t)j);
    }
}
