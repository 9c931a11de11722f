"""Cached decoding for the compiled Transformer.

The encoder runs once; every decoder layer projects the memory to its
cross-attention keys and values once; decoder self-attention keeps a
key/value cache, so each step feeds one new token per row through the
decoder: 1 query against the cached keys, through the same flash kernel
on strided views of the cache (no copies, no padding to a fixed length).

The search itself (greedy or beam) is `fastformer.decoding`'s, driving a
`CachedDecoder` through its step/reorder protocol.
"""
import numpy as np

from fastformer import _C
from fastformer.decoding import check_generate_args, search
from fastformer.model.plan import CROSS_ATTN, FFN, SELF_ATTN
from fastformer.ops import embedding_forward, gelu_forward, layer_norm_forward, matmul

_attention_forward = _C._attention_forward_views


class CachedDecoder:
    """Step decoder (see fastformer.decoding) over R = B * beam rows.

    memory: (B, S, d) encoder output; beam: rows per example (row r decodes
    example r // beam); src_mask: (B, S) bool or None; max_len: steps at most.
    Self-attention cache per decoder layer: (max_len, R, 2, h, dk), step t
    writing its K, V at [t] with one GEMM (the (R, 2d) slice is contiguous).
    """

    def __init__(self, model, memory, beam, src_mask, max_len):
        self.m = m = model
        B, S, d = memory.shape
        R, h, dk = B * beam, m.nhead, m.d_model // m.nhead
        self.R, self.t = R, 0
        self.src_mask = None if src_mask is None else np.ascontiguousarray(np.repeat(src_mask, beam, axis=0))
        mem2d = np.ascontiguousarray(memory.reshape(B * S, d))
        self.mem_kv = []  # per decoder layer: (k, v) head views (R, h, S, dk) of the memory projection
        self.cache = []
        for sub in m._dec:
            if sub.kind == CROSS_ATTN:
                kv = matmul(mem2d, sub.w.w_kv, trans_b=True, bias=sub.w.b_kv)  # (B*S, 2d), once
                kv = np.repeat(kv.reshape(B, S, 2 * d), beam, axis=0)          # beams share their memory
                self.mem_kv.append(tuple(kv.reshape(R, S, 2, h, dk).transpose(2, 0, 3, 1, 4)))
            elif sub.kind == SELF_ATTN:
                self.cache.append(np.empty((max_len, R, 2, h, dk), dtype=np.float32))

    def reorder(self, rows):
        """Row r continues row rows[r]'s history: permute the cached steps."""
        t = self.t
        for c in self.cache:
            c[:t] = c[:t, rows]  # the fancy index copies first

    def step(self, tokens):
        """tokens (R,) -> logits (R, V) of the next token."""
        m, t, R = self.m, self.t, self.R
        h, dk = m.nhead, m.d_model // m.nhead
        x = embedding_forward(tokens.reshape(R, 1), m._tgt_emb.data, m.positions[t:t + 1]).reshape(R, -1)
        self_i = cross_i = 0
        for sub in m._dec:
            n = sub.norm
            inp = layer_norm_forward(x, n.w, n.b, m.layer_norm_eps)[0] if m.norm_first else x
            w = sub.w
            if sub.kind == FFN:
                if m.activation == "relu":
                    hidden = matmul(inp, w.w1, trans_b=True, bias=w.b1, activation="relu")
                else:
                    hidden = gelu_forward(matmul(inp, w.w1, trans_b=True, bias=w.b1))
                body = matmul(hidden, w.w2, trans_b=True, bias=w.b2)
            else:
                if sub.kind == SELF_ATTN:
                    cache = self.cache[self_i]
                    self_i += 1
                    q = matmul(inp, w.w_q, trans_b=True, bias=w.b_q)
                    matmul(inp, w.w_kv, trans_b=True, bias=w.b_kv, out=cache[t].reshape(R, -1))
                    # (t+1, R, h, dk) -> (R, h, t+1, dk): strided views of the cache
                    k, v = cache[:t + 1, :, 0].transpose(1, 2, 0, 3), cache[:t + 1, :, 1].transpose(1, 2, 0, 3)
                    mask = None
                else:
                    k, v = self.mem_kv[cross_i]
                    cross_i += 1
                    q = matmul(inp, w.w_q, trans_b=True, bias=w.b_q)
                    mask = self.src_mask
                ctx = np.empty((R, m.d_model), dtype=np.float32)
                lse = np.empty((R, h, 1), dtype=np.float32)
                _attention_forward(ctx.reshape(R, h, 1, dk), lse, q.reshape(R, h, 1, dk), k, v, mask, False)
                body = matmul(ctx, w.w_out, trans_b=True, bias=w.b_out)
            if m.norm_first:
                x = x + body
            else:
                x = layer_norm_forward(body, n.w, n.b, m.layer_norm_eps, residual=x)[0]
        if m.final_norm:
            x = layer_norm_forward(x, m._dec_norm.w, m._dec_norm.b, m.layer_norm_eps)[0]
        self.t += 1
        return matmul(x, m._gen.w, trans_b=True, bias=m._gen.b)


def generate_cached(model, src, max_len, bos_id, eos_id, beam_size=1, src_key_padding_mask=None):
    """`model.generate` of the compiled Transformer (see its docstring)."""
    src, max_len, mask = check_generate_args(model, src, max_len, bos_id, eos_id, beam_size,
                                             src_key_padding_mask)
    B = src.shape[0]
    was_training = model.training
    model.eval()
    try:
        # The encoder through the training forward's own code and workspace (T = 1 for
        # the unused decoder buffers); this clobbers a pending forward's activations.
        model._run = None
        memory = model._encode_only(src, mask).reshape(B, src.shape[1], -1)
        decoder = CachedDecoder(model, memory, beam_size, mask, max_len)
        return search(decoder, B, max_len, bos_id, eos_id, beam_size)
    finally:
        model.train(was_training)
