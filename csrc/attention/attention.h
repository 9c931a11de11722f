/* Scaled dot-product attention, forward and backward, bit for bit the same
 * for any thread count. Two implementations with one contract
 * (fastformer/reference/attention.py is the oracle):
 *
 *   flash        fused: per (batch, head, query block) an online softmax over
 *                key blocks; memory O(B*h*T*dk); dropout regenerated inside.
 *   materialized the (Tq, Tk) score matrix of every head through ff_sgemm,
 *                a row softmax and a second GEMM; faster for very short T.
 *   rows         forward only, no dropout: per head, each query's scores by
 *                dot products, a row softmax and its weighted sum of values;
 *                for a few queries per head (cached decoding).
 *
 * Masks: key j is hidden from query i when key_padding_mask[b, j] != 0 or,
 * with causal, when j > i. A query that sees no key gets out 0, lse -inf and
 * gradient 0. Dropout acts on the probabilities with the Philox scheme of
 * random/philox.h, flat index ((b*H + h)*Tq + i)*Tk + j.
 *
 * Tensors are views: element (b, h, t, d) of q is
 * q[b*sq.batch + h*sq.head + t*sq.row + d] (d contiguous), so a packed
 * (B, T, 3, h, dk) QKV projection can be passed without a transpose.
 * lse is always contiguous (B, H, Tq).
 *
 * Each returns 0, or -1 when a workspace could not be allocated. */
#ifndef FF_ATTENTION_H
#define FF_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/* Element strides of a (B, H, T, dk) view; the dk axis has stride 1. */
typedef struct {
    size_t batch, head, row;
} ff_attn_view_t;

typedef struct {
    size_t B, H, Tq, Tk, dk;
    int causal;       /* hide key j > query i */
    double dropout_p; /* 0 <= p < 1 */
    uint64_t seed, step, site;
    int bf16;    /* the products on bf16-rounded inputs, fp32 sums (flash and rows) */
    int kv_bf16; /* with bf16, rows only: k and v already hold bf16 values (not rounded again) */
    int bf16_inputs; /* with bf16, flash only: q, k and v are stored as bf16 values (uint16_t) */
} ff_attn_dims_t;

/* x[i] rounded to bf16 in place (nearest even, as the bf16 kernels round
 * their inputs), i < n: a decoder's cache kept in bf16 values (kv_bf16). */
void ff_attn_round_bf16(float *x, size_t n);

/* The view of a contiguous (B, H, T, dk) array. */
static inline ff_attn_view_t ff_attn_contiguous(size_t H, size_t T, size_t dk) {
    ff_attn_view_t v = {H * T * dk, T * dk, dk};
    return v;
}

/* out is (B, H, Tq, dk), lse (B, H, Tq); q is (B, H, Tq, dk), k and v are
 * (B, H, Tk, dk); key_padding_mask is (B, Tk) uint8 (1 = padding) or NULL.
 * q, k and v are float32, or uint16_t bf16 values with d->bf16_inputs: the
 * bits of their float32 values, which the bf16 products round to themselves. */
int ff_attention_flash_forward(float *out, ff_attn_view_t so, float *lse, const void *q, ff_attn_view_t sq,
                               const void *k, ff_attn_view_t sk, const void *v, ff_attn_view_t sv,
                               const uint8_t *key_padding_mask, const ff_attn_dims_t *d);

/* The same forward contract, one query row at a time (dropout_p must be 0).
 * key_rows (B, Tk; row stride key_rows_ld) or NULL: key j of batch b is in
 * batch key_rows[b*ld + j] of k and v (which may then hold any number of
 * batches: a cache whose rows are reordered by index, not copied). */
int ff_attention_rows_forward(float *out, ff_attn_view_t so, float *lse, const float *q, ff_attn_view_t sq,
                              const float *k, ff_attn_view_t sk, const float *v, ff_attn_view_t sv,
                              const uint8_t *key_padding_mask, const int64_t *key_rows, size_t key_rows_ld,
                              const ff_attn_dims_t *d);

/* dq like q, dk like k, dv like v (overwritten, float32); dout and out are
 * (B, H, Tq, dk), lse (B, H, Tq) from the forward; q, k, v as the forward's. */
int ff_attention_flash_backward(float *dq, ff_attn_view_t sdq, float *dk, ff_attn_view_t sdk, float *dv,
                                ff_attn_view_t sdv, const float *dout, ff_attn_view_t sdo, const void *q,
                                ff_attn_view_t sq, const void *k, ff_attn_view_t sk, const void *v,
                                ff_attn_view_t sv, const float *out, ff_attn_view_t so, const float *lse,
                                const uint8_t *key_padding_mask, const ff_attn_dims_t *d);

/* The same contracts, through (B*H) materialized (Tq, Tk) matrices. */
int ff_attention_materialized_forward(float *out, ff_attn_view_t so, float *lse, const float *q, ff_attn_view_t sq,
                                      const float *k, ff_attn_view_t sk, const float *v, ff_attn_view_t sv,
                                      const uint8_t *key_padding_mask, const ff_attn_dims_t *d);

int ff_attention_materialized_backward(float *dq, ff_attn_view_t sdq, float *dk, ff_attn_view_t sdk, float *dv,
                                       ff_attn_view_t sdv, const float *dout, ff_attn_view_t sdo, const float *q,
                                       ff_attn_view_t sq, const float *k, ff_attn_view_t sk, const float *v,
                                       ff_attn_view_t sv, const float *out, ff_attn_view_t so, const float *lse,
                                       const uint8_t *key_padding_mask, const ff_attn_dims_t *d);

#endif
