"""The compiled encoder-decoder Transformer (SPEC sections 1-3).

Same constructor, methods, parameter layout and initialisation as
`fastformer.reference.Transformer` (both build on `fastformer.layout`), and
the same numbers up to float32 rounding: the same Philox dropout masks at the
same sites (`dropout_site(part, layer, slot)`, step = `rng_step`), so a model
trained here can be checked against the reference step by step.

How a step stays cheap:
- parameters and gradients are views into two flat float32 buffers; every
  weight gradient is a GEMM with beta=1 straight into its view of the flat
  gradient, and every bias gradient a column sum added in place
  (`column_sum(..., accumulate=True)`), never a temporary + add;
- activations live in a `Workspace` plan per (B, S, T) (see `plan.py`), and
  a training step (`forward_backward`) takes the generator and the loss a
  chunk of rows at a time, so it allocates no large array and never holds
  the (B, T, V) logits;
- self-attention projects Q, K and V with one GEMM into a packed (rows, 3d)
  buffer and the attention kernels read strided head views of it (and of
  the context they write) directly: no transposes, no per-head calls;
- post-norm sublayers fuse the residual into LayerNorm, and the body's input
  gradient is accumulated (beta=1) into the LayerNorm's gradient buffer;
- the kernels are called through the bindings' internal entry points
  (`internal.py`), without re-checking the model's own views on every call.
The sublayers themselves (what each saves, its forward, backward and
decoding step) are `sublayers.py`'s.
"""
import math

import numpy as np

from fastformer.data.batch import IGNORE_INDEX
from fastformer.layout import TransformerBase, synchronized
from fastformer.model.precision import warn_if_bf16_emulated
from fastformer.model.internal import (
    column_sum_into, cross_entropy_rows, dropout_into, layer_norm_into, linear_packed, matmul_into)
from fastformer.model.plan import build_plan, plan_specs
from fastformer.model.sublayers import (
    CROSS_ATTN, SELF_ATTN, CrossAttention, FeedForward, SelfAttention, norm_backward)
from fastformer.model.workspace import Workspace
from fastformer.ops import embedding_backward, embedding_forward, pack_matrix
from fastformer.reference.dropout import (
    PART_DECODER, PART_EMBEDDING, PART_ENCODER, SLOT_SRC_EMBEDDING, SLOT_TGT_EMBEDDING, dropout_site)
from fastformer.reference.embedding import sinusoidal_positions


class _Views:
    """Attribute bag of parameter views (data `w_*`/`b_*`, gradients `gw_*`/`gb_*`)."""

    def __init__(self, **views):
        self.__dict__.update(views)


class _Run:
    """What one forward leaves for its backward."""

    __slots__ = ("plan", "src", "tgt_in", "src_mask", "tgt_mask", "p", "step", "logits_shape")


class Transformer(TransformerBase):
    """Encoder-decoder Transformer on the compiled kernels, float32.

    Constructor as `fastformer.reference.Transformer` (without dtype).
    compute_dtype="bfloat16" runs every linear layer's products and
    attention's (q k^T, P v and the backward's, forward and backward) on
    bf16-rounded inputs summed in float32 (`ops.bf16_path()` names the
    kernel); weights, gradients, LayerNorm, softmax statistics, dropout and
    the loss stay float32.
    forward(src (B, S), tgt_in (B, T), src_key_padding_mask=None,
    tgt_key_padding_mask=None) -> logits (B, T, V_tgt) float32;
    backward(dlogits) accumulates into every parameter's grad;
    forward_backward(src, tgt_in, targets, ...) -> loss does the three of a
    training step (forward, cross-entropy, backward) without the logits;
    generate(...) decodes with a key/value cache (see `fastformer.model.generate`).
    """

    # Rows of logits the generator's backward takes at a time (a GEMM's k block:
    # the weight gradient is passed over no more often than in one product).
    LOSS_CHUNK_ROWS = 512

    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, nhead=8,
                 num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", norm_first=False, layer_norm_eps=1e-5,
                 final_norm=True, tie_embeddings=False, max_len=1024, seed=0, compute_dtype="float32"):
        super().__init__(src_vocab_size, tgt_vocab_size, d_model, nhead, num_encoder_layers,
                         num_decoder_layers, dim_feedforward, dropout, activation, norm_first,
                         layer_norm_eps, final_norm, tie_embeddings, max_len, seed, np.float32,
                         compute_dtype)
        if compute_dtype == "bfloat16":
            warn_if_bf16_emulated()
        self._bf16 = compute_dtype == "bfloat16"
        self.positions = sinusoidal_positions(self.max_len, self.d_model, np.float32)
        self._workspace = Workspace()
        self._loss_chunks = Workspace(max_plans=4)  # forward_backward's logits, LOSS_CHUNK_ROWS at a time
        self._gen_packed = {True: None, False: None}  # trans_b -> the generator weight packed (_pack_generator)
        self._run = None
        self._bind()

    # ----- parameter views, made once (the flat buffers never move) --------------------

    def _bind(self):
        P, d = self._params, self.d_model

        def norm(prefix):
            return _Views(w=P[f"{prefix}.weight"].data, b=P[f"{prefix}.bias"].data,
                          gw=P[f"{prefix}.weight"].grad, gb=P[f"{prefix}.bias"].grad)

        def attn(prefix):
            w_in, b_in = P[f"{prefix}.in_proj_weight"], P[f"{prefix}.in_proj_bias"]
            w_out, b_out = P[f"{prefix}.out_proj.weight"], P[f"{prefix}.out_proj.bias"]
            gb_in = b_in.grad
            # Cross-attention projects Q from the decoder and K, V from memory: rows [:d] and [d:].
            return _Views(w_in=w_in.data, b_in=b_in.data, gw_in=w_in.grad, gb_in=gb_in,
                          w_q=w_in.data[:d], b_q=b_in.data[:d], gw_q=w_in.grad[:d], gb_q=gb_in[:d],
                          w_kv=w_in.data[d:], b_kv=b_in.data[d:], gw_kv=w_in.grad[d:], gb_kv=gb_in[d:],
                          w_out=w_out.data, b_out=b_out.data, gw_out=w_out.grad,
                          gb_out=b_out.grad)

        def ffn(prefix):
            w1, b1 = P[f"{prefix}.linear1.weight"], P[f"{prefix}.linear1.bias"]
            w2, b2 = P[f"{prefix}.linear2.weight"], P[f"{prefix}.linear2.bias"]
            return _Views(w1=w1.data, b1=b1.data, gw1=w1.grad, gb1=b1.grad,
                          w2=w2.data, b2=b2.data, gw2=w2.grad, gb2=b2.grad)

        self._enc = []
        for i in range(self.num_encoder_layers):
            p = f"encoder.layers.{i}"
            self._enc += [SelfAttention(attn(f"{p}.self_attn"), norm(f"{p}.norm1"), PART_ENCODER, i),
                          FeedForward(ffn(p), norm(f"{p}.norm2"), PART_ENCODER, i)]
        self._dec = []
        for i in range(self.num_decoder_layers):
            p = f"decoder.layers.{i}"
            self._dec += [SelfAttention(attn(f"{p}.self_attn"), norm(f"{p}.norm1"), PART_DECODER, i, causal=True),
                          CrossAttention(attn(f"{p}.multihead_attn"), norm(f"{p}.norm2"), PART_DECODER, i),
                          FeedForward(ffn(p), norm(f"{p}.norm3"), PART_DECODER, i)]
        self._enc_norm = norm("encoder.norm") if self.final_norm else None
        self._dec_norm = norm("decoder.norm") if self.final_norm else None
        gen, bias = P[self._generator_weight], P["generator.bias"]
        self._gen = _Views(w=gen.data, b=bias.data, gw=gen.grad, gb=bias.grad)
        self._src_emb, self._tgt_emb = P["src_embedding.weight"], P["tgt_embedding.weight"]
        self._site_src = dropout_site(PART_EMBEDDING, 0, SLOT_SRC_EMBEDDING)
        self._site_tgt = dropout_site(PART_EMBEDDING, 0, SLOT_TGT_EMBEDDING)

    def _matmul(self, a, b, *, out, trans_a=False, trans_b=False, beta=0.0, bias=None, activation=None):
        """out = activation(op(a) op(b) + beta out + bias) in the model's compute_dtype."""
        return matmul_into(a, b, out, trans_a, trans_b, beta, bias, activation, self._bf16)

    def _plan(self, B, S, T):
        return self._workspace.plan((B, S, T), lambda: plan_specs(self, B, S, T),
                                    lambda views: build_plan(self, B, S, T, views))

    # ----- forward ------------------------------------------------------------------------

    @synchronized
    def forward(self, src, tgt_in, src_key_padding_mask=None, tgt_key_padding_mask=None, *, out=None):
        """src: (B, S), tgt_in: (B, T) integer token ids; masks (B, S) / (B, T)
        bool, True = padding (the source mask also hides memory keys from
        cross-attention; decoder self-attention is always causal).
        Returns logits (B, T, tgt_vocab_size) float32: `out` when given (a
        C-contiguous float32 array of that shape), else a new array.

        In training mode dropout uses step = rng_step, which then advances by 1.
        """
        src, tgt_in, src_mask, tgt_mask = self._check_inputs(src, tgt_in, src_key_padding_mask,
                                                              tgt_key_padding_mask)
        B, T = tgt_in.shape
        logits = self._logits_out(out, (B, T, self.tgt_vocab_size))
        run = self._forward_to_generator(src, tgt_in, src_mask, tgt_mask)
        self._matmul(run.plan.dec_out, self._gen.w, trans_b=True, bias=self._gen.b, out=logits.reshape(B * T, -1))
        run.logits_shape = logits.shape
        self._run = run
        return logits

    @synchronized
    def forward_backward(self, src, tgt_in, targets, src_key_padding_mask=None, tgt_key_padding_mask=None, *,
                         label_smoothing=0.0, ignore_index=IGNORE_INDEX, normalizer=None):
        """A training step's forward, loss and backward in one call, without
        the (B, T, V) logits: the generator, the loss and the generator's
        backward go through LOSS_CHUNK_ROWS rows at a time. Returns the loss
        of `ops.cross_entropy(logits, targets, ignore_index, label_smoothing,
        normalizer=normalizer)` on forward's logits, and accumulates its
        gradient into every parameter's grad: the bits of forward, that
        cross_entropy and backward(dlogits), in a (LOSS_CHUNK_ROWS, V) buffer.
        targets: (B, T) integer, in [0, tgt_vocab_size) or ignore_index."""
        src, tgt_in, src_mask, tgt_mask = self._check_inputs(src, tgt_in, src_key_padding_mask,
                                                              tgt_key_padding_mask)
        targets = self._check_targets(targets, tgt_in.shape, ignore_index, label_smoothing, normalizer)
        count = int(np.count_nonzero(targets != ignore_index)) if normalizer is None else normalizer
        inv_n = 1.0 / count if count else math.nan  # no target and no normalizer: the 0 / 0 of torch
        run = self._forward_to_generator(src, tgt_in, src_mask, tgt_mask)
        rows, V = targets.size, self.tgt_vocab_size
        chunk_rows = min(rows, self.LOSS_CHUNK_ROWS)
        chunk = self._loss_chunks.plan(chunk_rows, lambda: [("logits", (chunk_rows, V))], lambda views: views["logits"])
        targets, total = targets.reshape(-1), 0.0
        w_t, w = self._pack_generator(True), self._pack_generator(False)
        for part in self._loss_chunk_rows(rows):
            logits = chunk[:part.stop - part.start]
            linear_packed(run.plan.dec_out[part], w_t, logits, self._gen.b)
            total = cross_entropy_rows(logits, logits, targets[part], ignore_index, float(label_smoothing), inv_n,
                                       total)
            self._generator_backward(run.plan, logits, part, w)
        self._backward_below_generator(run)
        return total * inv_n

    def _forward_to_generator(self, src, tgt_in, src_mask, tgt_mask):
        """The forward of checked inputs up to the generator's input
        (plan.dec_out) -> its _Run (not yet the model's: see forward)."""
        (B, S), T = src.shape, tgt_in.shape[1]
        run = _Run()
        run.plan = plan = self._plan(B, S, T)
        run.src, run.tgt_in = src, tgt_in
        run.src_mask = None if src_mask is None else np.ascontiguousarray(src_mask)
        run.tgt_mask = None if tgt_mask is None else np.ascontiguousarray(tgt_mask)
        run.p = self.dropout if self.training else 0.0
        run.step = self.rng_step
        if self.training:
            self.rng_step += 1
        self._run = None  # a forward that fails half way leaves nothing to backpropagate

        self._encode(run)
        self._embed(run, tgt_in, self._tgt_emb.data, plan.tgt_y, self._site_tgt)
        y = plan.tgt_y
        for sub, buf in zip(self._dec, plan.dec):
            y = sub.forward(self, run, buf, y, run.tgt_mask if sub.kind == SELF_ATTN else run.src_mask)
        if self.final_norm:
            n = self._dec_norm
            layer_norm_into(y, n.w, n.b, self.layer_norm_eps, None, plan.dec_out, plan.dec_out_mean,
                             plan.dec_out_rstd)
        return run

    def _encode(self, run):
        """Embed run.src and run the encoder into run.plan.memory."""
        plan = run.plan
        self._embed(run, run.src, self._src_emb.data, plan.src_x, self._site_src)
        x = plan.src_x
        for sub, buf in zip(self._enc, plan.enc):
            x = sub.forward(self, run, buf, x, run.src_mask)
        if self.final_norm:
            n = self._enc_norm
            layer_norm_into(x, n.w, n.b, self.layer_norm_eps, None, plan.memory, plan.memory_mean,
                             plan.memory_rstd)
        return plan.memory

    def _encode_only(self, src, src_mask):
        """Memory (B*S, d) of checked src and mask, without dropout (for generate).
        The view lives in the workspace: valid until the next forward."""
        run = _Run()
        run.plan = self._plan(src.shape[0], src.shape[1], 1)
        run.src, run.src_mask, run.p, run.step = src, src_mask, 0.0, 0
        if src_mask is not None:
            run.src_mask = np.ascontiguousarray(src_mask)
        return self._encode(run)

    def _embed(self, run, ids, table, out, site):
        """out (B*L, d) = Dropout(table[ids] * sqrt(d) + positions)."""
        embedding_forward(ids, table, self.positions, out=out.reshape(ids.shape + (self.d_model,)))
        if run.p:
            dropout_into(out, run.p, self.seed, run.step, site, out)

    # ----- backward -----------------------------------------------------------------------

    @synchronized
    def backward(self, dlogits):
        """dlogits: (B, T, tgt_vocab_size), the gradient of the loss w.r.t. the
        last forward's logits. Accumulates into every parameter's `grad`
        (call zero_grad first for a fresh gradient). One backward per forward."""
        run = self._run
        if run is None:
            raise RuntimeError("backward needs a forward first (each forward allows one backward)")
        dlogits = self._check_dlogits(dlogits, run.logits_shape)
        self._run = None
        plan = run.plan
        dl = np.require(dlogits, np.float32, ("C", "A")).reshape(plan.B * plan.T, -1)  # the kernels' layout
        w = self._pack_generator(False)
        for part in self._loss_chunk_rows(dl.shape[0]):  # as forward_backward's, for its bits
            self._generator_backward(plan, dl[part], part, w)
        self._backward_below_generator(run)

    def _loss_chunk_rows(self, rows):
        """The slices of LOSS_CHUNK_ROWS rows (the last may be short) the generator's products take."""
        return (slice(r0, min(rows, r0 + self.LOSS_CHUNK_ROWS)) for r0 in range(0, rows, self.LOSS_CHUNK_ROWS))

    def _pack_generator(self, trans_b):
        """Wg^T (trans_b) or Wg packed for the chunks' products (bitwise
        matmul's): once per call, not once per chunk, into the same memory."""
        packed = pack_matrix(self._gen.w, trans_b=trans_b, compute_dtype=self.compute_dtype,
                             reuse=self._gen_packed[trans_b])
        self._gen_packed[trans_b] = packed
        return packed

    def _generator_backward(self, plan, dl, part, w):
        """logits = dec_out Wg^T + bg on the rows `part` (a slice), whose logits
        gradient is dl (w: Wg packed): Wg's and bg's gradients added, dec_out's
        rows into the decoder's gradient scratch (g2 before the final
        LayerNorm, else g1)."""
        g = self._gen
        self._matmul(dl, plan.dec_out[part], trans_a=True, beta=1.0, out=g.gw)
        column_sum_into(dl, g.gb)
        linear_packed(dl, w, (plan.gdec.g2 if self.final_norm else plan.gdec.g1)[part])

    def _backward_below_generator(self, run):
        """The backward from dec_out's gradient (see _generator_backward) down."""
        plan = run.plan
        gd, ge = plan.gdec, plan.genc
        if self.final_norm:
            norm_backward(self._dec_norm, gd.g2, plan.dec_last, plan.dec_out_mean, plan.dec_out_rstd, gd.g1)
        cur, spare = gd.g1, gd.g2
        mem_beta = 0.0  # the first cross-attention gradient sets genc.mem, later ones add
        for sub, buf in zip(reversed(self._dec), reversed(plan.dec)):
            mask = run.tgt_mask if sub.kind == SELF_ATTN else run.src_mask
            cur, spare = sub.backward(self, run, buf, gd, cur, spare, mask, mem_beta)
            if sub.kind == CROSS_ATTN:
                mem_beta = 1.0
        self._embedding_backward(run, cur, run.tgt_in, self._tgt_emb, self._site_tgt)

        if not self._dec:
            return  # the loss does not depend on the encoder
        if self.final_norm:
            norm_backward(self._enc_norm, ge.mem, plan.enc_last, plan.memory_mean, plan.memory_rstd, ge.g1)
            cur, spare = ge.g1, ge.g2
        else:
            cur, spare = ge.mem, ge.g1
        for sub, buf in zip(reversed(self._enc), reversed(plan.enc)):
            cur, spare = sub.backward(self, run, buf, ge, cur, spare, run.src_mask, 0.0)
        self._embedding_backward(run, cur, run.src, self._src_emb, self._site_src)

    def _embedding_backward(self, run, g, ids, table, site):
        if run.p:
            dropout_into(g, run.p, self.seed, run.step, site, g)
        embedding_backward(g.reshape(ids.shape + (self.d_model,)), ids, table.grad.shape[0], out=table.grad,
                           accumulate=True)

    # ----- decoding -----------------------------------------------------------------------

    @synchronized
    def generate(self, src, max_len, bos_id, eos_id, beam_size=1, src_key_padding_mask=None, **options):
        """Greedy (beam_size=1) or beam-search decoding with a key/value cache.

        src: (B, S) ids; src_key_padding_mask: (B, S) bool or None. Returns
        (B, L) int64 generated tokens of each sentence's best hypothesis (bos
        excluded), L <= max_len <= self.max_len (more is a ValueError); after a
        row's eos_id every position holds eos_id. `options` are those of
        `fastformer.search_options` (num_hypotheses, length_penalty,
        length_offset, min_len; sampling: temperature, top_k, top_p, seed);
        `fastformer.model.beam.generate_hypotheses` returns n-best and scores.
        Runs in eval mode; the model's mode and rng_step are left unchanged,
        and a pending forward can no longer be backpropagated.
        """
        from fastformer.model.generate import generate_cached

        return generate_cached(self, src, max_len, bos_id, eos_id, beam_size, src_key_padding_mask, **options)
