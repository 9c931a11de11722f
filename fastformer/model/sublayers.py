"""The residual sublayers of the compiled Transformer, each kind defined once.

A sublayer maps x (rows, d) to post-norm LN(x + Drop(body(x))) or pre-norm
x + Drop(body(LN(x))). The wrapper (LayerNorm, dropout, residual) is
`Sublayer`'s; each kind (`SelfAttention`, `CrossAttention`, `FeedForward`)
holds in one class everything of its body:
- `saved`: the activations its training forward keeps for the backward
  (its record in the workspace plan, see plan.py), and `head_views`;
- `body_forward` / `body_backward`: training (model/transformer.py);
- `decode_state` / `decode_body`: one step of cached decoding on weights
  packed once (model/generate.py), the same products as training's forward.
Shapes: rows = B*L (L = S in the encoder, T in the decoder), N = B*S rows of
memory, d = d_model, f = dim_feedforward, h heads of width dk = d / h.
"""
import numpy as np

from fastformer.model.internal import (
    activation_backward_into, activation_into, attention_backward_into, attention_forward_into,
    column_sum_into, dropout_into, layer_norm_backward_into, layer_norm_into, linear_packed, to_bf16_into)
from fastformer.reference.dropout import (
    SLOT_CROSS_ATTN_OUT, SLOT_CROSS_ATTN_PROBS, SLOT_FFN_OUT, SLOT_SELF_ATTN_OUT, SLOT_SELF_ATTN_PROBS,
    dropout_site)

SELF_ATTN, CROSS_ATTN, FFN = "self_attn", "cross_attn", "ffn"


def stored_dtype(cfg):
    """The dtype of an activation only bf16 products read: a bf16 model's
    products round it to bf16 anyway, so it keeps those values (uint16, half
    the bytes) for the same bits; float32 otherwise."""
    return np.uint16 if cfg.compute_dtype == "bfloat16" else np.float32


def heads(a, B, L, h, dk):
    """(B*L, d) -> (B, h, L, dk) view."""
    return a.reshape(B, L, h, dk).transpose(0, 2, 1, 3)


def packed_heads(a, B, L, h, dk):
    """(B*L, n*d) -> n views (B, h, L, dk): the (B, L, n, h, dk) layout of a packed projection."""
    return tuple(a.reshape(B, L, -1, h, dk).transpose(2, 0, 3, 1, 4))


def norm_backward(n, dy, x, mean, rstd, out, residual=None):
    """out = dLN/dx (also the residual's gradient); the LayerNorm n's weight
    and bias gradients (d,) are added to its grads."""
    layer_norm_backward_into(dy, x, n.w, mean, rstd, residual, out, n.gw, n.gb)


class Sublayer:
    """One residual sublayer: its weights `w` (views of the flat parameters
    and gradients), LayerNorm `norm`, dropout sites; the kind's body below."""

    kind = out_slot = probs_slot = None

    def __init__(self, w, norm, part, layer, causal=False):
        self.w, self.norm, self.causal = w, norm, causal
        self.site_out = dropout_site(part, layer, self.out_slot)
        self.site_probs = dropout_site(part, layer, self.probs_slot) if self.probs_slot is not None else 0

    # ----- the activation record ----------------------------------------------------------

    def saved(self, cfg, B, L, S):
        """[(field, shape)] of what one forward keeps for the backward."""
        rows, d = B * L, cfg.d_model
        fields = [("out", (rows, d)),               # post-norm LN(x + body), pre-norm x + body
                  ("mean", (rows,)), ("rstd", (rows,))]  # of the LayerNorm
        if cfg.norm_first:  # the body is made in out (plan.py), as the backward reads LN(x), not the body
            fields.append(("normed", (rows, d), stored_dtype(cfg)))  # LN(x), the body's input: products only
        else:
            fields.append(("body", (rows, d)))      # Dropout(body(x)), for LN(x + body)'s backward
        return fields + self.body_saved(cfg, B, L, S)

    def body_saved(self, cfg, B, L, S):
        raise NotImplementedError

    def head_views(self, buf, B, L, S, h, dk):
        """Add the attention kernels' (B, h, L, dk) views of buf's buffers."""

    # ----- training -----------------------------------------------------------------------

    def forward(self, m, run, buf, x, mask):
        """x (rows, d) -> buf.out, saving buf's activations (m: the model)."""
        n, eps = self.norm, m.layer_norm_eps
        h = x
        if m.norm_first:
            h = buf.normed
            if h.dtype == np.float32:
                layer_norm_into(x, n.w, n.b, eps, None, h, buf.mean, buf.rstd)
            else:  # through the plan's float32 scratch
                normed = run.plan.normed[:h.shape[0]]
                to_bf16_into(layer_norm_into(x, n.w, n.b, eps, None, normed, buf.mean, buf.rstd), h)
        self.body_forward(m, run, buf, h, mask)
        if run.p:
            dropout_into(buf.body, run.p, m.seed, run.step, self.site_out, buf.body)
        if m.norm_first:
            np.add(x, buf.body, out=buf.out)
        else:
            layer_norm_into(buf.body, n.w, n.b, eps, x, buf.out, buf.mean, buf.rstd)
        return buf.out

    def backward(self, m, run, buf, gs, g, spare, mask, mem_beta):
        """Gradient g (rows, d) of buf.out -> (buffer holding the gradient of
        buf.x, the free buffer). gs: this side's gradient scratch."""
        if m.norm_first:
            dbody = g
            if run.p:
                dbody = dropout_into(g, run.p, m.seed, run.step, self.site_out, gs.body)
            self.body_backward(m, run, buf, gs, dbody, buf.normed, gs.ln, 0.0, mask, mem_beta)
            norm_backward(self.norm, gs.ln, buf.x, buf.mean, buf.rstd, spare)
            np.add(g, spare, out=g)  # the residual path
            return g, spare
        # post-norm: dz = dLN(x + body); the body's input gradient is added to dz
        norm_backward(self.norm, g, buf.body, buf.mean, buf.rstd, spare, residual=buf.x)
        dbody = spare
        if run.p:
            dbody = dropout_into(spare, run.p, m.seed, run.step, self.site_out, gs.body)
        self.body_backward(m, run, buf, gs, dbody, buf.x, spare, 1.0, mask, mem_beta)
        return spare, g

    def body_forward(self, m, run, buf, h, mask):
        """buf.body = body(h), before dropout."""
        raise NotImplementedError

    def body_backward(self, m, run, buf, gs, dbody, h, dx, dx_beta, mask, mem_beta):
        """dbody: gradient of the body's output; h: the body's input.
        dx = dx_beta * dx + dL/dh; weight gradients accumulate into the flat
        gradient. dbody is read before dx is written (they may alias)."""
        raise NotImplementedError

    @staticmethod
    def _linear_backward(m, gy, x, weight, grad, bias_grad, dx, dx_beta=0.0):
        """y = x W^T + b with gradient gy: W's and b's gradients added,
        dx = dx_beta dx + gy W."""
        m._matmul(gy, x, trans_a=True, beta=1.0, out=grad)
        column_sum_into(gy, bias_grad)
        m._matmul(gy, weight, beta=dx_beta, out=dx)

    # ----- cached decoding ----------------------------------------------------------------

    def pack(self, pack):
        """The weights for decoding, each matrix packed once (pack: weight ->
        its W^T packed): (W_in, b_in, W_out, b_out) of the body's first
        product and of its output projection."""
        raise NotImplementedError

    def decode_state(self, dec, memory):
        """What this sublayer keeps across decoding steps (dec: the
        CachedDecoder, memory (B*S, d)), or None."""
        return None

    def decode_select(self, state, sentences):
        """The state of the kept sentences (indices) only."""
        return state

    def decode_step(self, dec, packed, state, x):
        """One step on the R rows x (R, d) of dec, in place."""
        m, buf, n, eps = dec.m, dec.buf, self.norm, dec.m.layer_norm_eps
        R = x.shape[0]
        inp, mean, rstd = buf.inp[:R], buf.mean[:R], buf.rstd[:R]
        if m.norm_first:
            layer_norm_into(x, n.w, n.b, eps, None, inp, mean, rstd)
        else:
            inp = x
        w_in, b_in, w_out, b_out = packed
        a = self.decode_body(dec, w_in, b_in, state, inp)
        if m.norm_first:  # x += the sublayer's output, in the product's epilogue
            linear_packed(a, w_out, x, b_out, None, 1.0)
        else:
            y = linear_packed(a, w_out, buf.y[:R], b_out)
            layer_norm_into(y, n.w, n.b, eps, x, buf.inp[:R], mean, rstd)
            x[:] = buf.inp[:R]

    def decode_body(self, dec, w_in, b_in, state, inp):
        """The body up to its output projection's input (R, d or f)."""
        raise NotImplementedError


class SelfAttention(Sublayer):
    """Multi-head self-attention (causal in the decoder): Q, K and V in one
    product into a packed (rows, 3d) buffer whose strided head views the
    attention kernels read (no transposes)."""

    kind, out_slot, probs_slot = SELF_ATTN, SLOT_SELF_ATTN_OUT, SLOT_SELF_ATTN_PROBS

    def body_saved(self, cfg, B, L, S):
        rows, d = B * L, cfg.d_model
        return [("qkv", (rows, 3 * d), stored_dtype(cfg)),  # [Q | K | V] = h W_in^T + b_in
                ("ctx", (rows, d)),            # attention output, heads side by side
                ("lse", (B, cfg.nhead, L))]    # softmax log-sum-exp per query

    def head_views(self, buf, B, L, S, h, dk):
        buf.q, buf.k, buf.v = packed_heads(buf.qkv, B, L, h, dk)
        buf.ctx_h = heads(buf.ctx, B, L, h, dk)

    def body_forward(self, m, run, buf, h, mask):
        w = self.w
        m._matmul(h, w.w_in, trans_b=True, bias=w.b_in, out=buf.qkv)
        attention_forward_into(buf.ctx_h, buf.lse, buf.q, buf.k, buf.v, mask, self.causal, run.p, m.seed,
                               run.step, self.site_probs, compute_dtype=m.compute_dtype)
        m._matmul(buf.ctx, w.w_out, trans_b=True, bias=w.b_out, out=buf.body)

    def body_backward(self, m, run, buf, gs, dbody, h, dx, dx_beta, mask, mem_beta):
        w = self.w
        self._linear_backward(m, dbody, buf.ctx, w.w_out, w.gw_out, w.gb_out, gs.ctx)
        attention_backward_into(*gs.qkv_h, gs.ctx_h, buf.q, buf.k, buf.v, buf.ctx_h, buf.lse, mask, self.causal,
                                run.p, m.seed, run.step, self.site_probs, compute_dtype=m.compute_dtype)
        self._linear_backward(m, gs.qkv, h, w.w_in, w.gw_in, w.gb_in, dx, dx_beta)

    def pack(self, pack):
        w = self.w
        return pack(w.w_in), w.b_in, pack(w.w_out), w.b_out

    def decode_state(self, dec, memory):
        """The key/value cache (R, 2h, max_len, dk): at step t row r writes its
        K, V into slot r at [r, :, t] (see CachedDecoder)."""
        m = dec.m
        return np.empty((dec.R, 2 * m.nhead, dec.max_len, m.d_model // m.nhead), dtype=np.float32)

    def decode_body(self, dec, w_in, b_in, cache, inp):
        m, buf, R, t = dec.m, dec.buf, inp.shape[0], dec.t
        d, h = m.d_model, m.nhead
        dk = d // h
        qkv = dec.kv_values(linear_packed(inp, w_in, buf.qkv[:R], b_in))
        cache[:R, :, t] = qkv[:, d:].reshape(R, 2 * h, dk)
        k, v = cache[:, :h, :t + 1], cache[:, h:, :t + 1]  # (slots, h, t+1, dk) views
        ctx = buf.ctx[:R]
        attention_forward_into(ctx.reshape(R, h, 1, dk), buf.lse[:R * h].reshape(R, h, 1),
                               qkv[:, :d].reshape(R, h, 1, dk), k, v, None, False, impl="rows",
                               key_rows=dec.key_rows[:R, :t + 1], compute_dtype=m.compute_dtype, kv_bf16=dec.bf16)
        return ctx


class CrossAttention(Sublayer):
    """Decoder attention over the encoder's memory: Q from the decoder's rows,
    K and V (one product) from the memory's N rows."""

    kind, out_slot, probs_slot = CROSS_ATTN, SLOT_CROSS_ATTN_OUT, SLOT_CROSS_ATTN_PROBS

    def body_saved(self, cfg, B, L, S):
        rows, d = B * L, cfg.d_model
        return [("q", (rows, d), stored_dtype(cfg)),          # h W_q^T + b_q
                ("kv", (B * S, 2 * d), stored_dtype(cfg)),    # [K | V] = memory W_kv^T + b_kv
                ("ctx", (rows, d)),
                ("lse", (B, cfg.nhead, L))]

    def head_views(self, buf, B, L, S, h, dk):
        buf.q_h = heads(buf.q, B, L, h, dk)
        buf.k, buf.v = packed_heads(buf.kv, B, S, h, dk)
        buf.ctx_h = heads(buf.ctx, B, L, h, dk)

    def body_forward(self, m, run, buf, h, mask):
        w = self.w
        m._matmul(h, w.w_q, trans_b=True, bias=w.b_q, out=buf.q)
        m._matmul(run.plan.memory, w.w_kv, trans_b=True, bias=w.b_kv, out=buf.kv)
        attention_forward_into(buf.ctx_h, buf.lse, buf.q_h, buf.k, buf.v, mask, False, run.p, m.seed, run.step,
                               self.site_probs, compute_dtype=m.compute_dtype)
        m._matmul(buf.ctx, w.w_out, trans_b=True, bias=w.b_out, out=buf.body)

    def body_backward(self, m, run, buf, gs, dbody, h, dx, dx_beta, mask, mem_beta):
        """Also the memory's gradient: set (mem_beta 0) or added into genc.mem."""
        ge, w = run.plan.genc, self.w
        self._linear_backward(m, dbody, buf.ctx, w.w_out, w.gw_out, w.gb_out, gs.ctx)
        attention_backward_into(gs.q_h, *ge.kv_h, gs.ctx_h, buf.q_h, buf.k, buf.v, buf.ctx_h, buf.lse, mask, False,
                                run.p, m.seed, run.step, self.site_probs, compute_dtype=m.compute_dtype)
        self._linear_backward(m, ge.kv, run.plan.memory, w.w_kv, w.gw_kv, w.gb_kv, ge.mem, mem_beta)
        self._linear_backward(m, gs.q, h, w.w_q, w.gw_q, w.gb_q, dx, dx_beta)

    def pack(self, pack):
        w = self.w
        return pack(w.w_q), w.b_q, pack(w.w_out), w.b_out

    def decode_state(self, dec, memory):
        """The memory's keys and values (2, B, h, S, dk), projected once per
        sentence, not per beam: a sentence's beams are its queries."""
        m, (B, S) = dec.m, (dec.B, memory.shape[0] // dec.B)
        kv = m._matmul(memory, self.w.w_kv, trans_b=True, bias=self.w.b_kv,
                       out=np.empty((B * S, 2 * m.d_model), dtype=np.float32))
        return dec.kv_values(kv.reshape(B, S, 2, m.nhead, -1).transpose(2, 0, 3, 1, 4))

    def decode_select(self, kv, sentences):
        return kv[:, sentences]

    def decode_body(self, dec, w_in, b_in, kv, inp):
        m, buf, R, B, K = dec.m, dec.buf, inp.shape[0], dec.B, dec.beam
        h, dk = m.nhead, m.d_model // m.nhead
        q = linear_packed(inp, w_in, buf.q[:R], b_in)
        ctx = buf.ctx[:R]  # queries (B*K, d) -> (B, h, K, dk) against each sentence's (B, h, S, dk)
        attention_forward_into(ctx.reshape(B, K, h, dk).transpose(0, 2, 1, 3), buf.lse[:R * h].reshape(B, h, K),
                               q.reshape(B, K, h, dk).transpose(0, 2, 1, 3), kv[0], kv[1], dec.src_mask, False,
                               impl="rows", compute_dtype=m.compute_dtype, kv_bf16=dec.bf16)
        return ctx


class FeedForward(Sublayer):
    """act(h W1^T + b1) W2^T + b2; relu rides in the first product's epilogue."""

    kind, out_slot = FFN, SLOT_FFN_OUT

    def body_saved(self, cfg, B, L, S):
        rows, f = B * L, cfg.dim_feedforward
        # act(hidden), the second product's input; relu's backward sees the same signs in bf16
        # (but for positives up to half bf16's least subnormal, 4.6e-41: they round to 0)
        fields = [("hact", (rows, f), stored_dtype(cfg))]
        if cfg.activation != "relu":
            fields.append(("hpre", (rows, f)))  # the hidden pre-activation, for gelu's derivative
        return fields

    def body_forward(self, m, run, buf, h, mask):
        w = self.w
        if m.activation == "relu":  # relu in the GEMM epilogue (which rounds to bf16 for a bf16 hact)
            m._matmul(h, w.w1, trans_b=True, bias=w.b1, activation="relu", out=buf.hact)
        else:
            m._matmul(h, w.w1, trans_b=True, bias=w.b1, out=buf.hpre)
            if buf.hact.dtype == np.float32:
                activation_into(buf.hpre, "gelu", buf.hact)
            else:  # through the plan's float32 scratch
                to_bf16_into(activation_into(buf.hpre, "gelu", run.plan.hidden[:h.shape[0]]), buf.hact)
        m._matmul(buf.hact, w.w2, trans_b=True, bias=w.b2, out=buf.body)

    def body_backward(self, m, run, buf, gs, dbody, h, dx, dx_beta, mask, mem_beta):
        w = self.w
        self._linear_backward(m, dbody, buf.hact, w.w2, w.gw2, w.gb2, gs.h)
        if m.activation == "relu":
            activation_backward_into(gs.h, buf.hact, "relu", gs.h)  # hact > 0 exactly where hpre > 0
        else:
            activation_backward_into(gs.h, buf.hpre, "gelu", gs.h)
        self._linear_backward(m, gs.h, h, w.w1, w.gw1, w.gb1, dx, dx_beta)

    def pack(self, pack):
        w = self.w
        return pack(w.w1), w.b1, pack(w.w2), w.b2

    def decode_body(self, dec, w_in, b_in, state, inp):
        hidden = dec.buf.hidden[:inp.shape[0]]
        if dec.m.activation == "relu":
            return linear_packed(inp, w_in, hidden, b_in, "relu")
        return activation_into(linear_packed(inp, w_in, hidden, b_in), "gelu", hidden)
