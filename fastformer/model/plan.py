"""Where one (B, S, T) forward/backward keeps its activations: the buffer
list of the workspace plan and the views the kernels take.

Rows: the encoder works on N = B*S rows of width d, the decoder on M = B*T.
Each residual sublayer has a buffer namespace with
    x       (rows, d)  its input (the previous sublayer's `out`: not stored twice)
    normed  (rows, d)  LN(x), pre-norm only
    body    (rows, d)  Dropout(body(x or normed)), the sublayer body's output
    out     (rows, d)  post-norm LN(x + body), pre-norm x + body
    mean, rstd (rows,) of its LayerNorm
and the body's own activations:
    self-attention   qkv (rows, 3d), ctx (rows, d), lse (B, h, L), and head
                     views q, k, v, ctx_h (B, h, L, dk) into them (no transposes:
                     the attention kernels take strided views)
    cross-attention  q (M, d), kv (N, 2d), ctx (M, d), lse (B, h, T)
    feed-forward     hact (rows, d_ff) = act(hidden), and hpre (rows, d_ff),
                     the pre-activation, for gelu (relu's derivative reads hact)
Gradient scratch, one set for both sides (the decoder's backward ends before
the encoder's begins; each side views its N or M rows of max(N, M)): g1, g2
(the running gradient, ping-ponged by post-norm sublayers), body, ctx, qkv,
ln, h; the decoder's q; and mem, kv (N rows) for the memory's gradient from
cross-attention, which the decoder's backward fills for the encoder's.
"""
from types import SimpleNamespace as NS

SELF_ATTN, CROSS_ATTN, FFN = "self_attn", "cross_attn", "ffn"

ENCODER_KINDS = (SELF_ATTN, FFN)
DECODER_KINDS = (SELF_ATTN, CROSS_ATTN, FFN)


def plan_specs(cfg, B, S, T):
    """[(name, shape)] of every buffer for a (B, S, T) batch. cfg: the model."""
    d, f, h = cfg.d_model, cfg.dim_feedforward, cfg.nhead
    N, M = B * S, B * T
    specs = [("src_x", (N, d)), ("tgt_y", (M, d))]

    def sublayer(prefix, kind, rows, L):
        s = [(prefix + "out", (rows, d)), (prefix + "body", (rows, d)),
             (prefix + "mean", (rows,)), (prefix + "rstd", (rows,))]
        if cfg.norm_first:
            s.append((prefix + "normed", (rows, d)))
        if kind == SELF_ATTN:
            s += [(prefix + "qkv", (rows, 3 * d)), (prefix + "ctx", (rows, d)), (prefix + "lse", (B, h, L))]
        elif kind == CROSS_ATTN:
            s += [(prefix + "q", (rows, d)), (prefix + "kv", (N, 2 * d)), (prefix + "ctx", (rows, d)),
                  (prefix + "lse", (B, h, L))]
        else:
            s.append((prefix + "hact", (rows, f)))
            if cfg.activation != "relu":
                s.append((prefix + "hpre", (rows, f)))
        return s

    for i in range(cfg.num_encoder_layers):
        for kind in ENCODER_KINDS:
            specs += sublayer(f"enc{i}.{kind}.", kind, N, S)
    for i in range(cfg.num_decoder_layers):
        for kind in DECODER_KINDS:
            specs += sublayer(f"dec{i}.{kind}.", kind, M, T)
    if cfg.final_norm:
        specs += [("memory", (N, d)), ("memory_mean", (N,)), ("memory_rstd", (N,)),
                  ("dec_out", (M, d)), ("dec_out_mean", (M,)), ("dec_out_rstd", (M,))]
    specs += [("g." + name, (max(N, M) * width,)) for name, width in _shared_grads(cfg)]
    specs += [("gdec.q", (M, d)), ("genc.mem", (N, d)), ("genc.kv", (N, 2 * d))]
    return specs


def _shared_grads(cfg):
    """[(name, width)] of the gradient scratch both sides use in turn."""
    d = cfg.d_model
    return [("g1", d), ("g2", d), ("body", d), ("ctx", d), ("qkv", 3 * d), ("ln", d), ("h", cfg.dim_feedforward)]


def build_plan(cfg, B, S, T, views):
    """The plan namespace for a (B, S, T) batch from the workspace views."""
    h, dk = cfg.nhead, cfg.d_model // cfg.nhead

    def heads(a, L):  # (B*L, d) -> (B, h, L, dk)
        return a.reshape(B, L, h, dk).transpose(0, 2, 1, 3)

    def packed_heads(a, L):  # (B*L, n*d) -> n views (B, h, L, dk): the (B, L, n, h, dk) layout
        return tuple(a.reshape(B, L, -1, h, dk).transpose(2, 0, 3, 1, 4))

    def sublayer(prefix, kind, x, L):
        buf = NS(kind=kind, x=x, **{k[len(prefix):]: v for k, v in views.items() if k.startswith(prefix)})
        if kind == SELF_ATTN:
            buf.q, buf.k, buf.v = packed_heads(buf.qkv, L)
            buf.ctx_h = heads(buf.ctx, L)
        elif kind == CROSS_ATTN:
            buf.q_h = heads(buf.q, L)
            buf.k, buf.v = packed_heads(buf.kv, S)
            buf.ctx_h = heads(buf.ctx, L)
        return buf

    p = NS(B=B, S=S, T=T, src_x=views["src_x"], tgt_y=views["tgt_y"])
    x, p.enc = p.src_x, []
    for i in range(cfg.num_encoder_layers):
        for kind in ENCODER_KINDS:
            p.enc.append(sublayer(f"enc{i}.{kind}.", kind, x, S))
            x = p.enc[-1].out
    p.enc_last = x
    y, p.dec = p.tgt_y, []
    for i in range(cfg.num_decoder_layers):
        for kind in DECODER_KINDS:
            p.dec.append(sublayer(f"dec{i}.{kind}.", kind, y, T))
            y = p.dec[-1].out
    p.dec_last = y
    if cfg.final_norm:
        p.memory, p.memory_mean, p.memory_rstd = views["memory"], views["memory_mean"], views["memory_rstd"]
        p.dec_out, p.dec_out_mean, p.dec_out_rstd = views["dec_out"], views["dec_out_mean"], views["dec_out_rstd"]
    else:
        p.memory, p.dec_out = p.enc_last, p.dec_last

    def grads(prefix, L):
        g = NS(**{k[len(prefix):]: v for k, v in views.items() if k.startswith(prefix)})
        for name, width in _shared_grads(cfg):
            setattr(g, name, views["g." + name][:B * L * width].reshape(B * L, width))
        g.qkv_h = packed_heads(g.qkv, L)
        g.ctx_h = heads(g.ctx, L)
        return g

    p.genc, p.gdec = grads("genc.", S), grads("gdec.", T)
    p.gdec.q_h = heads(p.gdec.q, T)
    p.genc.kv_h = packed_heads(p.genc.kv, S)
    return p
