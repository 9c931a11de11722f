"""Where one (B, S, T) forward/backward keeps its activations: the buffer
list of the workspace plan and the records of views the kernels take.

Rows: the encoder works on N = B*S rows of width d, the decoder on M = B*T.
Each sublayer's record is what its kind saves (`Sublayer.saved` in
sublayers.py: out, body, LayerNorm statistics, the body's own activations),
plus x, its input (the previous sublayer's out: not stored twice), and the
attention kernels' head views; one buffer list and the records derive from
that one definition. Beside them: the embeddings' outputs src_x (N, d) and
tgt_y (M, d), the final LayerNorms' outputs and statistics, and the gradient
scratch: one set for both sides (the decoder's backward ends before the
encoder's begins; each side views its N or M rows of max(N, M)): g1, g2 (the
running gradient, ping-ponged by post-norm sublayers), body, ctx, qkv, ln,
h; the decoder's q; and mem, kv (N rows) for the memory's gradient from
cross-attention, which the decoder's backward fills for the encoder's.
"""
from types import SimpleNamespace as NS

from fastformer.model.sublayers import heads, packed_heads

ENCODER, DECODER = "enc", "dec"


def _sides(cfg, B, S, T):
    """(side, index, sublayer, L) of every sublayer, encoder first."""
    return ([(ENCODER, i, sub, S) for i, sub in enumerate(cfg._enc)]
            + [(DECODER, i, sub, T) for i, sub in enumerate(cfg._dec)])


def plan_specs(cfg, B, S, T):
    """[(key, shape)] of every buffer for a (B, S, T) batch. cfg: the model."""
    d = cfg.d_model
    N, M = B * S, B * T
    specs = [("src_x", (N, d)), ("tgt_y", (M, d))]
    for side, i, sub, L in _sides(cfg, B, S, T):
        specs += [((side, i, field), *rest) for field, *rest in sub.saved(cfg, B, L, S)]
    if cfg.final_norm:
        specs += [("memory", (N, d)), ("memory_mean", (N,)), ("memory_rstd", (N,)),
                  ("dec_out", (M, d)), ("dec_out_mean", (M,)), ("dec_out_rstd", (M,))]
    specs += [(("grad", name), (max(N, M) * width,)) for name, width in _shared_grads(cfg)]
    specs += [("gdec.q", (M, d)), ("genc.mem", (N, d)), ("genc.kv", (N, 2 * d))]
    return specs


def _shared_grads(cfg):
    """[(name, width)] of the gradient scratch both sides use in turn."""
    d = cfg.d_model
    return [("g1", d), ("g2", d), ("body", d), ("ctx", d), ("qkv", 3 * d), ("ln", d), ("h", cfg.dim_feedforward)]


def build_plan(cfg, B, S, T, views):
    """The plan namespace for a (B, S, T) batch from the workspace views."""
    h, dk = cfg.nhead, cfg.d_model // cfg.nhead
    p = NS(B=B, S=S, T=T, src_x=views["src_x"], tgt_y=views["tgt_y"], enc=[], dec=[])
    x = {ENCODER: p.src_x, DECODER: p.tgt_y}
    for side, i, sub, L in _sides(cfg, B, S, T):
        buf = NS(x=x[side], **{field: views[side, i, field] for field, *_ in sub.saved(cfg, B, L, S)})
        sub.head_views(buf, B, L, S, h, dk)
        getattr(p, side).append(buf)
        x[side] = buf.out
    p.enc_last, p.dec_last = x[ENCODER], x[DECODER]
    if cfg.final_norm:
        p.memory, p.memory_mean, p.memory_rstd = views["memory"], views["memory_mean"], views["memory_rstd"]
        p.dec_out, p.dec_out_mean, p.dec_out_rstd = views["dec_out"], views["dec_out_mean"], views["dec_out_rstd"]
    else:
        p.memory, p.dec_out = p.enc_last, p.dec_last

    def grads(L, **own):
        g = NS(**own)
        for name, width in _shared_grads(cfg):
            setattr(g, name, views["grad", name][:B * L * width].reshape(B * L, width))
        g.qkv_h = packed_heads(g.qkv, B, L, h, dk)
        g.ctx_h = heads(g.ctx, B, L, h, dk)
        return g

    p.hidden = views["grad", "h"].reshape(-1, cfg.dim_feedforward)  # forward: a bf16 model's FFN hidden in fp32
    p.genc = grads(S, mem=views["genc.mem"], kv=views["genc.kv"])
    p.genc.kv_h = packed_heads(p.genc.kv, B, S, h, dk)
    p.gdec = grads(T, q=views["gdec.q"])
    p.gdec.q_h = heads(p.gdec.q, B, T, h, dk)
    return p
