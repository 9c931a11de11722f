"""Where one (B, S, T) forward/backward keeps its activations: the buffer
list of the workspace plan and the records of views the kernels take.

Rows: the encoder works on N = B*S rows of width d, the decoder on M = B*T.
Each sublayer's record is what its kind saves (`Sublayer.saved` in
sublayers.py: out, LayerNorm statistics, body (post-norm) or LN(x)
(pre-norm, whose body is made in out), the body's own activations),
plus x, its input (the previous sublayer's out: not stored twice), and the
attention kernels' head views; one buffer list and the records derive from
that one definition. Beside them: the embeddings' outputs src_x (N, d) and
tgt_y (M, d), the final LayerNorms' outputs and statistics, and the gradient
scratch: one set for both sides (the decoder's backward ends before the
encoder's begins; each side views its N or M rows of max(N, M)): g1, g2 (the
running gradient, ping-ponged by post-norm sublayers), body, ln (pre-norm
only), and mem (N rows), the memory's gradient from cross-attention, which
the decoder's backward fills for the encoder's. The rest lives in one
`work` buffer, as no two sublayer kinds run their backward at once:
  attention's  [ctx | qkv]  or  [ctx | q | kv (N rows: the memory's K, V)]
  feed-forward [h]
(all 4d wide at f = 4d), and the forward's float32 scratch of a bf16 model
(the FFN's gelu hidden, pre-norm's LN(x)) before rounding.
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
    work = max(max(N, M) * max(cfg.dim_feedforward, 4 * d), 2 * M * d + 2 * N * d)
    specs += [("genc.mem", (N, d)), ("work", (work,))]
    return specs


def _shared_grads(cfg):
    """[(name, width)] of the gradient scratch both sides use in turn, beside `work`."""
    d = cfg.d_model
    return [("g1", d), ("g2", d), ("body", d)] + ([("ln", d)] if cfg.norm_first else [])


def build_plan(cfg, B, S, T, views):
    """The plan namespace for a (B, S, T) batch from the workspace views."""
    h, dk = cfg.nhead, cfg.d_model // cfg.nhead
    p = NS(B=B, S=S, T=T, src_x=views["src_x"], tgt_y=views["tgt_y"], enc=[], dec=[])
    x = {ENCODER: p.src_x, DECODER: p.tgt_y}
    for side, i, sub, L in _sides(cfg, B, S, T):
        buf = NS(x=x[side], **{field: views[side, i, field] for field, *_ in sub.saved(cfg, B, L, S)})
        if cfg.norm_first:
            buf.body = buf.out  # pre-norm: out = x + body is made in place
        sub.head_views(buf, B, L, S, h, dk)
        getattr(p, side).append(buf)
        x[side] = buf.out
    p.enc_last, p.dec_last = x[ENCODER], x[DECODER]
    if cfg.final_norm:
        p.memory, p.memory_mean, p.memory_rstd = views["memory"], views["memory_mean"], views["memory_rstd"]
        p.dec_out, p.dec_out_mean, p.dec_out_rstd = views["dec_out"], views["dec_out_mean"], views["dec_out_rstd"]
    else:
        p.memory, p.dec_out = p.enc_last, p.dec_last

    work, d, f, N, M = views["work"], cfg.d_model, cfg.dim_feedforward, B * S, B * T

    def grads(L, **own):
        g, rows = NS(**own), B * L
        for name, width in _shared_grads(cfg):
            setattr(g, name, views["grad", name][:rows * width].reshape(rows, width))
        g.ctx = work[:rows * d].reshape(rows, d)
        g.qkv = work[rows * d:rows * 4 * d].reshape(rows, 3 * d)
        g.h = work[:rows * f].reshape(rows, f)
        g.qkv_h = packed_heads(g.qkv, B, L, h, dk)
        g.ctx_h = heads(g.ctx, B, L, h, dk)
        return g

    p.hidden = work[:max(N, M) * f].reshape(-1, f)  # forward: a bf16 model's FFN hidden in fp32
    p.normed = work[:max(N, M) * d].reshape(-1, d)  # and its pre-norm LN(x) in fp32
    p.genc = grads(S, mem=views["genc.mem"], kv=work[2 * M * d:2 * (M + N) * d].reshape(N, 2 * d))
    p.genc.kv_h = packed_heads(p.genc.kv, B, S, h, dk)
    p.gdec = grads(T, q=work[M * d:2 * M * d].reshape(M, d))
    p.gdec.q_h = heads(p.gdec.q, B, T, h, dk)
    return p
