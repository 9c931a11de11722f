"""The whole encoder-decoder Transformer in NumPy (SPEC sections 1-3).

Parameters and gradients are views into two flat buffers laid out in SPEC
section 2 order, so zero_grad is one fill and an optimizer one flat loop.
Dropout masks are counter-based (see `fastformer.reference.dropout`): key =
the model's seed, step = `rng_step` of the forward that drew them, site =
`dropout_site(part, layer, slot)`; backward regenerates them.
"""
from functools import partial

import numpy as np

from fastformer.data.batch import IGNORE_INDEX
from fastformer.decoding import generate_uncached
from fastformer.layout import LoadResult, Parameter, TransformerBase, synchronized  # noqa: F401  (re-exported)
from fastformer.reference.attention import mha_backward, mha_forward
from fastformer.reference.dropout import (
    PART_DECODER, PART_EMBEDDING, PART_ENCODER, SLOT_CROSS_ATTN_OUT, SLOT_CROSS_ATTN_PROBS,
    SLOT_FFN_OUT, SLOT_SELF_ATTN_OUT, SLOT_SELF_ATTN_PROBS, SLOT_SRC_EMBEDDING,
    SLOT_TGT_EMBEDDING, dropout_backward, dropout_forward, dropout_site)
from fastformer.reference.embedding import embedding_backward, embedding_forward, sinusoidal_positions
from fastformer.reference.ffn import ffn_backward, ffn_forward
from fastformer.reference.layernorm import layer_norm_backward, layer_norm_forward
from fastformer.reference.linear import linear_backward, linear_forward
from fastformer.reference.loss import cross_entropy


class Transformer(TransformerBase):
    """Encoder-decoder Transformer, the NumPy reference of `fastformer.Transformer`.

    Same constructor and methods as the compiled model, plus `dtype`
    (np.float32 or np.float64). compute_dtype="bfloat16" rounds the inputs of
    every linear layer's products (projections, feed-forward, generator) to
    bfloat16, forward and backward, as the compiled bf16 model does; the rest
    runs in dtype. Initialisation as torch.nn.Transformer:
    xavier-uniform matrices, zero biases, LayerNorm ones/zeros; embeddings
    normal(0, d_model**-0.5); drawn in SPEC order from default_rng(seed)
    (the layout and its initialisation live in `fastformer.layout`).
    """

    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, nhead=8,
                 num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", norm_first=False, layer_norm_eps=1e-5,
                 final_norm=True, tie_embeddings=False, max_len=1024, seed=0,
                 dtype=np.float32, compute_dtype="float32"):
        super().__init__(src_vocab_size, tgt_vocab_size, d_model, nhead, num_encoder_layers,
                         num_decoder_layers, dim_feedforward, dropout, activation, norm_first,
                         layer_norm_eps, final_norm, tie_embeddings, max_len, seed, dtype, compute_dtype)
        self._cache = None
        self.positions = sinusoidal_positions(self.max_len, self.d_model, self.dtype)

    @synchronized
    def generate(self, src, max_len, bos_id, eos_id, beam_size=1, src_key_padding_mask=None, **options):
        """Greedy (beam_size=1) or beam-search decoding, without a cache: each
        step re-runs forward on the growing prefix (see fastformer.decoding).
        src: (B, S) ids -> (B, L) int64 generated tokens, bos excluded, L <=
        max_len; after a row's eos_id every position holds eos_id. `options`:
        see `fastformer.search_options`; `fastformer.decoding.hypotheses_uncached`
        returns n-best and scores."""
        return generate_uncached(self, src, max_len, bos_id, eos_id, beam_size, src_key_padding_mask,
                                 **options)

    # ----- building blocks --------------------------------------------------------

    def _w(self, name):
        return self._params[name].data

    def _accumulate(self, names, grads):
        for name, g in zip(names, grads):
            self._params[name].grad += g

    def _drop(self, x, site, backward=False):
        """Dropout of a sublayer output / embedding at `site` (identity in eval or p = 0)."""
        c = self._cache
        if not c["training"] or self.dropout == 0.0:
            return x
        op = dropout_backward if backward else dropout_forward
        return op(x, self.dropout, self.seed, c["step"], site)

    def _attn_forward(self, prefix, h, kv, mask, causal, site):
        """Self-attention (kv is h) or cross-attention sublayer body -> (y, cache)."""
        c = self._cache
        p = self.dropout if c["training"] else 0.0
        return mha_forward(h, kv, self._w(f"{prefix}.in_proj_weight"),
                           self._w(f"{prefix}.in_proj_bias"), self._w(f"{prefix}.out_proj.weight"),
                           self._w(f"{prefix}.out_proj.bias"), self.nhead, mask, causal, p,
                           self.seed, c["step"], site, compute_dtype=self.compute_dtype)

    def _attn_backward(self, prefix, dy, cache):
        """-> (dh, dkv or None), accumulating the projection gradients."""
        dh, dkv, *grads = mha_backward(dy, cache)
        self._accumulate([f"{prefix}.in_proj_weight", f"{prefix}.in_proj_bias",
                          f"{prefix}.out_proj.weight", f"{prefix}.out_proj.bias"], grads)
        return dh, dkv

    def _ffn_forward(self, prefix, h):
        y, hidden_pre = ffn_forward(h, self._w(f"{prefix}.linear1.weight"),
                                    self._w(f"{prefix}.linear1.bias"),
                                    self._w(f"{prefix}.linear2.weight"),
                                    self._w(f"{prefix}.linear2.bias"), self.activation,
                                    compute_dtype=self.compute_dtype)
        return y, (h, hidden_pre)

    def _ffn_backward(self, prefix, dy, cache):
        h, hidden_pre = cache
        dh, *grads = ffn_backward(dy, h, hidden_pre, self._w(f"{prefix}.linear1.weight"),
                                  self._w(f"{prefix}.linear2.weight"), self.activation,
                                  compute_dtype=self.compute_dtype)
        self._accumulate([f"{prefix}.linear1.weight", f"{prefix}.linear1.bias",
                          f"{prefix}.linear2.weight", f"{prefix}.linear2.bias"], grads)
        return dh, None

    def _norm_forward(self, norm, x, residual=None):
        return layer_norm_forward(x, self._w(f"{norm}.weight"), self._w(f"{norm}.bias"),
                                  self.layer_norm_eps, residual)

    def _norm_backward(self, norm, dy, x, mean, rstd, residual=None):
        P = self._params
        return layer_norm_backward(dy, x, self._w(f"{norm}.weight"), mean, rstd, residual,
                                   dweight=P[f"{norm}.weight"].grad, dbias=P[f"{norm}.bias"].grad,
                                   accumulate=True)[0]

    def _sublayer_forward(self, x, norm, body, site):
        """One residual sublayer around body(h) -> (y, body_cache):
        post-norm x = LN(x + Drop(body(x))), pre-norm x = x + Drop(body(LN(x)))."""
        if self.norm_first:
            h, mean, rstd = self._norm_forward(norm, x)
            y, body_cache = body(h)
            return x + self._drop(y, site), (x, None, mean, rstd, body_cache)
        y, body_cache = body(x)
        y = self._drop(y, site)
        out, mean, rstd = self._norm_forward(norm, y, residual=x)
        return out, (x, y, mean, rstd, body_cache)

    def _sublayer_backward(self, dout, norm, body_backward, site, cache):
        """-> (dx, the body's extra input gradient: dmemory for cross-attention)."""
        x, y, mean, rstd, body_cache = cache
        if self.norm_first:
            dh, dextra = body_backward(self._drop(dout, site, backward=True), body_cache)
            return dout + self._norm_backward(norm, dh, x, mean, rstd), dextra
        dz = self._norm_backward(norm, dout, y, mean, rstd, residual=x)
        dh, dextra = body_backward(self._drop(dz, site, backward=True), body_cache)
        return dz + dh, dextra

    # ----- forward and backward ---------------------------------------------------

    def _encoder_layer_forward(self, i, x, src_mask):
        p = f"encoder.layers.{i}"
        site = partial(dropout_site, PART_ENCODER, i)
        x, c1 = self._sublayer_forward(
            x, f"{p}.norm1",
            lambda h: self._attn_forward(f"{p}.self_attn", h, h, src_mask, False,
                                         site(SLOT_SELF_ATTN_PROBS)),
            site(SLOT_SELF_ATTN_OUT))
        x, c2 = self._sublayer_forward(x, f"{p}.norm2", lambda h: self._ffn_forward(p, h),
                                       site(SLOT_FFN_OUT))
        return x, (c1, c2)

    def _encoder_layer_backward(self, i, dx, cache):
        p = f"encoder.layers.{i}"
        c1, c2 = cache
        dx, _ = self._sublayer_backward(dx, f"{p}.norm2", lambda d, c: self._ffn_backward(p, d, c),
                                        dropout_site(PART_ENCODER, i, SLOT_FFN_OUT), c2)
        dx, _ = self._sublayer_backward(
            dx, f"{p}.norm1", lambda d, c: self._attn_backward(f"{p}.self_attn", d, c),
            dropout_site(PART_ENCODER, i, SLOT_SELF_ATTN_OUT), c1)
        return dx

    def _decoder_layer_forward(self, i, y, memory, tgt_mask, src_mask):
        p = f"decoder.layers.{i}"
        site = partial(dropout_site, PART_DECODER, i)
        y, c1 = self._sublayer_forward(
            y, f"{p}.norm1",
            lambda h: self._attn_forward(f"{p}.self_attn", h, h, tgt_mask, True,
                                         site(SLOT_SELF_ATTN_PROBS)),
            site(SLOT_SELF_ATTN_OUT))
        y, c2 = self._sublayer_forward(
            y, f"{p}.norm2",
            lambda h: self._attn_forward(f"{p}.multihead_attn", h, memory, src_mask, False,
                                         site(SLOT_CROSS_ATTN_PROBS)),
            site(SLOT_CROSS_ATTN_OUT))
        y, c3 = self._sublayer_forward(y, f"{p}.norm3", lambda h: self._ffn_forward(p, h),
                                       site(SLOT_FFN_OUT))
        return y, (c1, c2, c3)

    def _decoder_layer_backward(self, i, dy, cache):
        """-> (dy, dmemory) of one decoder layer."""
        p = f"decoder.layers.{i}"
        c1, c2, c3 = cache
        dy, _ = self._sublayer_backward(dy, f"{p}.norm3", lambda d, c: self._ffn_backward(p, d, c),
                                        dropout_site(PART_DECODER, i, SLOT_FFN_OUT), c3)
        dy, dmemory = self._sublayer_backward(
            dy, f"{p}.norm2", lambda d, c: self._attn_backward(f"{p}.multihead_attn", d, c),
            dropout_site(PART_DECODER, i, SLOT_CROSS_ATTN_OUT), c2)
        dy, _ = self._sublayer_backward(
            dy, f"{p}.norm1", lambda d, c: self._attn_backward(f"{p}.self_attn", d, c),
            dropout_site(PART_DECODER, i, SLOT_SELF_ATTN_OUT), c1)
        return dy, dmemory

    def _embed(self, ids, table, slot):
        x = embedding_forward(ids, self._w(table), self.positions)
        return self._drop(x, dropout_site(PART_EMBEDDING, 0, slot))

    @synchronized
    def forward(self, src, tgt_in, src_key_padding_mask=None, tgt_key_padding_mask=None, *, out=None):
        """src: (B, S), tgt_in: (B, T) integer token ids; masks (B, S) / (B, T)
        bool, True = padding (the source mask also hides memory keys from
        cross-attention; decoder self-attention is always causal).
        Returns logits (B, T, tgt_vocab_size) in the model's dtype: `out`
        when given (a C-contiguous array of that shape and dtype), else new.

        In training mode dropout uses step = rng_step, which then advances by 1.
        """
        src, tgt_in, src_mask, tgt_mask = self._check_inputs(src, tgt_in, src_key_padding_mask,
                                                              tgt_key_padding_mask)
        if out is not None:  # checked before the work
            out = self._logits_out(out, tgt_in.shape + (self.tgt_vocab_size,))
        self._cache = c = dict(training=self.training, step=self.rng_step, src=src, tgt_in=tgt_in)
        if self.training:
            self.rng_step += 1

        x = self._embed(src, "src_embedding.weight", SLOT_SRC_EMBEDDING)
        c["encoder"] = []
        for i in range(self.num_encoder_layers):
            x, layer_cache = self._encoder_layer_forward(i, x, src_mask)
            c["encoder"].append(layer_cache)
        if self.final_norm:
            memory, mean, rstd = self._norm_forward("encoder.norm", x)
            c["encoder_norm"] = (x, mean, rstd)
        else:
            memory = x

        y = self._embed(tgt_in, "tgt_embedding.weight", SLOT_TGT_EMBEDDING)
        c["decoder"] = []
        for i in range(self.num_decoder_layers):
            y, layer_cache = self._decoder_layer_forward(i, y, memory, tgt_mask, src_mask)
            c["decoder"].append(layer_cache)
        if self.final_norm:
            y_norm, mean, rstd = self._norm_forward("decoder.norm", y)
            c["decoder_norm"] = (y, mean, rstd)
        else:
            y_norm = y
        c["out"] = y_norm
        logits = linear_forward(y_norm, self._w(self._generator_weight), self._w("generator.bias"),
                                compute_dtype=self.compute_dtype)
        c["logits_shape"] = logits.shape
        if out is None:
            return logits
        np.copyto(out, logits)
        return out

    @synchronized
    def forward_backward(self, src, tgt_in, targets, src_key_padding_mask=None, tgt_key_padding_mask=None, *,
                         label_smoothing=0.0, ignore_index=IGNORE_INDEX, normalizer=None):
        """forward, `cross_entropy(logits, targets, ignore_index, label_smoothing,
        normalizer=normalizer)` and backward of its gradient in one call (a
        training step's) -> the loss. targets: (B, T) integer, in
        [0, tgt_vocab_size) or ignore_index."""
        src, tgt_in, _, _ = self._check_inputs(src, tgt_in, src_key_padding_mask, tgt_key_padding_mask)
        targets = self._check_targets(targets, tgt_in.shape, ignore_index, label_smoothing, normalizer)
        logits = self.forward(src, tgt_in, src_key_padding_mask, tgt_key_padding_mask)
        loss, dlogits = cross_entropy(logits, targets, ignore_index, label_smoothing, out=logits,
                                      normalizer=normalizer)
        self.backward(dlogits)
        return loss

    @synchronized
    def backward(self, dlogits):
        """dlogits: (B, T, tgt_vocab_size), the gradient of the loss w.r.t. the
        last forward's logits. Accumulates into every parameter's `grad`
        (call zero_grad first for a fresh gradient); frees the forward's cache."""
        c = self._cache
        if c is None:
            raise RuntimeError("backward needs a forward first (each forward allows one backward)")
        dlogits = self._check_dlogits(dlogits, c["logits_shape"]).astype(self.dtype, copy=False)

        dout, dwg, dbg = linear_backward(dlogits, c["out"], self._w(self._generator_weight),
                                         compute_dtype=self.compute_dtype)
        self._accumulate([self._generator_weight, "generator.bias"], [dwg, dbg])
        dy = self._norm_backward("decoder.norm", dout, *c["decoder_norm"]) if self.final_norm else dout
        dmemory = None
        for i in reversed(range(self.num_decoder_layers)):
            dy, dm = self._decoder_layer_backward(i, dy, c["decoder"][i])
            dmemory = dm if dmemory is None else dmemory + dm
        dy = self._drop(dy, dropout_site(PART_EMBEDDING, 0, SLOT_TGT_EMBEDDING), backward=True)
        embedding_backward(dy, c["tgt_in"], self.tgt_vocab_size,
                           out=self._params["tgt_embedding.weight"].grad, accumulate=True)

        if dmemory is not None:
            dx = self._norm_backward("encoder.norm", dmemory, *c["encoder_norm"]) if self.final_norm else dmemory
            for i in reversed(range(self.num_encoder_layers)):
                dx = self._encoder_layer_backward(i, dx, c["encoder"][i])
            dx = self._drop(dx, dropout_site(PART_EMBEDDING, 0, SLOT_SRC_EMBEDDING), backward=True)
            embedding_backward(dx, c["src"], self.src_vocab_size,
                               out=self._params["src_embedding.weight"].grad, accumulate=True)
        self._cache = None
