"""Cached decoding for the compiled Transformer.

The encoder runs once; every decoder layer projects the memory to its
cross-attention keys and values once; decoder self-attention keeps a
key/value cache, so each step feeds one new token per row through the
decoder: 1 query against the cached keys, through the attention kernel for
few queries (`impl="rows"`) on strided views of the cache (no copies, no
padding to a fixed length).

The search itself is `fastformer.model.beam`'s (beam search and greedy, its
ranking and bookkeeping vectorised over all sentences, finished sentences
dropped from the batch); sampling is the reference's. Both drive a
`CachedDecoder` through its step/reorder protocol.
"""
from types import SimpleNamespace

import numpy as np

from fastformer import _C
from fastformer.decoding import check_generate_args
from fastformer.model.plan import CROSS_ATTN, FFN, SELF_ATTN
from fastformer.ops import embedding_forward, pack_matrix

# Internal entry points: the decoder's own arrays skip the per-call checks (see model/transformer.py).
_attention_forward = _C._attention_forward_views
_round_bf16_inplace = _C._round_bf16_inplace
_linear_packed = _C._linear_packed
_layer_norm_into = _C._layer_norm_into
_activation_into = _C._activation_into


class _DecodeWeights:
    """A decoder sublayer's weights for cached decoding: each matrix packed
    once (`ops.pack_matrix`) for the few-row products of every step, which
    are bitwise those of the model's `matmul` on the unpacked weights
    (bf16 panels for a compute_dtype="bfloat16" model)."""

    def __init__(self, sub, compute_dtype):
        w = sub.w
        self.kind, self.norm = sub.kind, sub.norm
        pack = _weight_packer(compute_dtype)
        if sub.kind == FFN:
            self.w1, self.b1 = pack(w.w1), w.b1
            self.w2, self.b2 = pack(w.w2), w.b2
            return
        # self-attention: Q, K, V in one product; cross-attention: Q only (K, V come from memory)
        self.w_in, self.b_in = (pack(w.w_in), w.b_in) if sub.kind == SELF_ATTN else (pack(w.w_q), w.b_q)
        self.w_out, self.b_out = pack(w.w_out), w.b_out


def _weight_packer(compute_dtype):
    """weight (out, in) -> its W^T packed for x W^T products in compute_dtype."""
    return lambda weight: pack_matrix(weight, trans_b=True, compute_dtype=compute_dtype)


class CachedDecoder:
    """Step decoder (see fastformer.decoding) over R = B * beam rows.

    memory: (B, S, d) encoder output; beam: rows per sentence (row r decodes
    sentence r // beam); src_mask: (B, S) bool or None; max_len: steps at most.
    Self-attention cache per decoder layer: (R, 2h, max_len, dk) slots, keys
    of the h heads then their values, each head's positions contiguous (so
    attention streams them); at step t row r writes its K, V into slot r at
    [r, :, t]. `key_rows` (R, max_len), shared by the layers, says in which
    slot each row's history keeps position t' (attention's `key_rows`), so a
    beam reorder or a finished sentence moves an index row, never a key.
    Cross-attention keys and values, (2, B, h, S, dk), are projected once per
    sentence, not per beam: a sentence's beams are `beam` queries against its
    own memory. Weights are packed once per decoder (`_DecodeWeights`).
    `select` also drops finished sentences from the batch.
    """

    def __init__(self, model, memory, beam, src_mask, max_len):
        self.m = m = model
        B, S, d = memory.shape
        h, dk = m.nhead, m.d_model // m.nhead
        self.bf16 = m.compute_dtype == "bfloat16"
        self.B, self.beam, self.R, self.t = B, beam, B * beam, 0
        self.src_mask = None if src_mask is None else np.ascontiguousarray(src_mask)
        mem2d = np.ascontiguousarray(memory.reshape(B * S, d))
        self.mem_kv = []  # per decoder layer: (2, B, h, S, dk) memory projection, once per sentence
        self.cache = []
        for sub in m._dec:
            if sub.kind == CROSS_ATTN:
                kv = m._matmul(mem2d, sub.w.w_kv, trans_b=True, bias=sub.w.b_kv,
                               out=np.empty((B * S, 2 * d), dtype=np.float32))
                self.mem_kv.append(self._kv_values(kv.reshape(B, S, 2, h, dk).transpose(2, 0, 3, 1, 4)))
            elif sub.kind == SELF_ATTN:
                self.cache.append(np.empty((self.R, 2 * h, max_len, dk), dtype=np.float32))
        self.key_rows = np.zeros((self.R, max_len), dtype=np.int64)
        self.slots = np.arange(self.R, dtype=np.int64)
        self.layers = [_DecodeWeights(sub, m.compute_dtype) for sub in m._dec]
        self.gen = _weight_packer(m.compute_dtype)(m._gen.w)
        # every step's activations, for the R rows of the first step (later steps use prefixes)
        R, f = self.R, m.dim_feedforward
        empty = lambda *shape: np.empty(shape, dtype=np.float32)  # noqa: E731
        self.buf = SimpleNamespace(x=empty(R, d), y=empty(R, d), inp=empty(R, d), ctx=empty(R, d), q=empty(R, d),
                                   qkv=empty(R, 3 * d), hidden=empty(R, f), lse=empty(R * h), mean=empty(R),
                                   rstd=empty(R))

    def _kv_values(self, a):
        """a as a C-contiguous array; in a bf16 model, rounded to bf16 once
        here (queries too: the kernel rounds them anyway), so attention over
        the cache never rounds keys and values again (kv_bf16)."""
        a = np.ascontiguousarray(a)
        return _round_bf16_inplace(a) if self.bf16 else a

    def reorder(self, rows):
        """Row r continues row rows[r]'s history (the step-decoder protocol)."""
        self.select(rows)

    def select(self, rows, sentences=None):
        """Keep rows `rows` (R_new,) of the current R, in that order; with
        `sentences` (B_new,), the kept sentences' indices (rows must be theirs,
        beam rows each, in the same order): the others leave the batch."""
        rows = np.asarray(rows, dtype=np.int64)
        self.key_rows[:len(rows), :self.t] = self.key_rows[rows, :self.t]
        if sentences is not None and len(sentences) != self.B:
            self.mem_kv = [kv[:, sentences] for kv in self.mem_kv]
            if self.src_mask is not None:
                self.src_mask = np.ascontiguousarray(self.src_mask[sentences])
            self.B = len(sentences)
        self.R = len(rows)

    def step(self, tokens):
        """tokens (R,) -> logits (R, V) of the next token."""
        m, t, R, B, K, d = self.m, self.t, self.R, self.B, self.beam, self.m.d_model
        h, dk, eps, buf = m.nhead, d // m.nhead, m.layer_norm_eps, self.buf
        x, y, inp, ctx = buf.x[:R], buf.y[:R], buf.inp[:R], buf.ctx[:R]
        embedding_forward(tokens.reshape(R, 1), m._tgt_emb.data, m.positions[t:t + 1], out=x.reshape(R, 1, d))
        self.key_rows[:R, t] = self.slots[:R]  # row r writes position t into slot r
        self_i = cross_i = 0
        for w in self.layers:
            n = w.norm
            if m.norm_first:
                _layer_norm_into(x, n.w, n.b, eps, None, inp, buf.mean[:R], buf.rstd[:R])
            else:
                inp = x
            if w.kind == FFN:
                hidden = buf.hidden[:R]
                if m.activation == "relu":
                    _linear_packed(inp, w.w1, hidden, w.b1, "relu")
                else:
                    _activation_into(_linear_packed(inp, w.w1, hidden, w.b1), "gelu", hidden)
                a, w_out, b_out = hidden, w.w2, w.b2
            else:
                if w.kind == SELF_ATTN:
                    cache = self.cache[self_i]
                    self_i += 1
                    qkv = self._kv_values(_linear_packed(inp, w.w_in, buf.qkv[:R], w.b_in))
                    cache[:R, :, t] = qkv[:, d:].reshape(R, 2 * h, dk)
                    k, v = cache[:, :h, :t + 1], cache[:, h:, :t + 1]  # (slots, h, t+1, dk) views
                    _attention_forward(ctx.reshape(R, h, 1, dk), buf.lse[:R * h].reshape(R, h, 1),
                                       qkv[:, :d].reshape(R, h, 1, dk), k, v, None, False, impl="rows",
                                       key_rows=self.key_rows[:R, :t + 1], compute_dtype=m.compute_dtype,
                                       kv_bf16=self.bf16)
                else:
                    q = _linear_packed(inp, w.w_in, buf.q[:R], w.b_in)
                    k, v = self.mem_kv[cross_i]  # (B, h, S, dk) each; queries (B*K, d) -> (B, h, K, dk)
                    cross_i += 1
                    _attention_forward(ctx.reshape(B, K, h, dk).transpose(0, 2, 1, 3),
                                       buf.lse[:R * h].reshape(B, h, K), q.reshape(B, K, h, dk).transpose(0, 2, 1, 3),
                                       k, v, self.src_mask, False, impl="rows", compute_dtype=m.compute_dtype,
                                       kv_bf16=self.bf16)
                a, w_out, b_out = ctx, w.w_out, w.b_out
            if m.norm_first:  # x += the sublayer's output, in the product's epilogue
                _linear_packed(a, w_out, x, b_out, None, 1.0)
            else:
                _linear_packed(a, w_out, y, b_out)
                _layer_norm_into(y, n.w, n.b, eps, x, buf.inp[:R], buf.mean[:R], buf.rstd[:R])
                x[:] = buf.inp[:R]
        if m.final_norm:
            x = _layer_norm_into(x, m._dec_norm.w, m._dec_norm.b, eps, None, buf.inp[:R], buf.mean[:R],
                                 buf.rstd[:R])
        self.t += 1
        return _linear_packed(x, self.gen, np.empty((R, m.tgt_vocab_size), dtype=np.float32), m._gen.b)


def cached_decoder(model, src, mask, beam_size, max_len):
    """Encode checked src (B, S) once and return its CachedDecoder (model in eval mode)."""
    # The encoder through the training forward's own code and workspace (T = 1 for
    # the unused decoder buffers); this clobbers a pending forward's activations.
    model._run = None
    memory = model._encode_only(src, mask).reshape(src.shape[0], src.shape[1], -1)
    return CachedDecoder(model, memory, beam_size, mask, max_len)


def generate_hypotheses(model, src, max_len, bos_id, eos_id, beam_size=1, src_key_padding_mask=None,
                        **options):
    """The compiled search (`fastformer.model.beam`; sampling as the reference's)
    over a CachedDecoder -> Hypotheses: n-best tokens and scores per sentence."""
    from fastformer.model.beam import beam_search
    from fastformer.reference.beam_search import sample

    src, max_len, mask, opts = check_generate_args(model, src, max_len, bos_id, eos_id, beam_size,
                                                   src_key_padding_mask, **options)
    with model._lock:  # the decoder uses the model's workspace (see layout.synchronized)
        was_training = model.training
        model.eval()
        try:
            decoder = cached_decoder(model, src, mask, opts.beam_size, max_len)
            search = sample if opts.sampling else beam_search
            return search(decoder, src.shape[0], max_len, bos_id, eos_id, opts)
        finally:
            model.train(was_training)


def generate_cached(model, src, max_len, bos_id, eos_id, beam_size=1, src_key_padding_mask=None, **options):
    """`model.generate` of the compiled Transformer (see its docstring)."""
    return generate_hypotheses(model, src, max_len, bos_id, eos_id, beam_size, src_key_padding_mask,
                               **options).best(eos_id)
