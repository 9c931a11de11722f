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

from fastformer.decoding import check_generate_args
from fastformer.model.internal import layer_norm_into, linear_packed, round_bf16_inplace
from fastformer.ops import embedding_forward, pack_matrix


class CachedDecoder:
    """Step decoder (see fastformer.decoding) over R = B * beam rows.

    memory: (B, S, d) encoder output; beam: rows per sentence (row r decodes
    sentence r // beam); src_mask: (B, S) bool or None; max_len: steps at most.
    Each decoder sublayer runs its own step (`Sublayer.decode_step` in
    sublayers.py) on its weights, each matrix packed once per decoder for
    the few-row products of every step (bitwise those of the model's
    unpacked products; bf16 panels in a bf16 model), and its state:
    - self-attention's key/value cache, (R, 2h, max_len, dk) slots: keys of
      the h heads then their values, each head's positions contiguous (so
      attention streams them); at step t row r writes its K, V into slot r
      at [r, :, t]. `key_rows` (R, max_len), shared by the layers, says in
      which slot each row's history keeps position t' (attention's
      `key_rows`), so a beam reorder or a finished sentence moves an index
      row, never a key;
    - cross-attention's keys and values, (2, B, h, S, dk), projected once
      per sentence, not per beam: a sentence's beams are `beam` queries
      against its own memory.
    `select` also drops finished sentences from the batch.
    """

    def __init__(self, model, memory, beam, src_mask, max_len):
        self.m = m = model
        B, S, d = memory.shape
        self.bf16 = m.compute_dtype == "bfloat16"
        self.B, self.beam, self.R, self.t, self.max_len = B, beam, B * beam, 0, max_len
        self.src_mask = None if src_mask is None else np.ascontiguousarray(src_mask)
        mem2d = np.ascontiguousarray(memory.reshape(B * S, d))
        self.state = [sub.decode_state(self, mem2d) for sub in m._dec]
        self.key_rows = np.zeros((self.R, max_len), dtype=np.int64)
        self.slots = np.arange(self.R, dtype=np.int64)
        pack = _weight_packer(m.compute_dtype)
        self.packed = [sub.pack(pack) for sub in m._dec]
        self.gen = pack(m._gen.w)
        # every step's activations, for the R rows of the first step (later steps use prefixes)
        R, f, h = self.R, m.dim_feedforward, m.nhead
        empty = lambda *shape: np.empty(shape, dtype=np.float32)  # noqa: E731
        self.buf = SimpleNamespace(x=empty(R, d), y=empty(R, d), inp=empty(R, d), ctx=empty(R, d), q=empty(R, d),
                                   qkv=empty(R, 3 * d), hidden=empty(R, f), lse=empty(R * h), mean=empty(R),
                                   rstd=empty(R))

    def kv_values(self, a):
        """a as a C-contiguous array; in a bf16 model, rounded to bf16 once
        here (queries too: the kernel rounds them anyway), so attention over
        the cache never rounds keys and values again (kv_bf16)."""
        a = np.ascontiguousarray(a)
        return round_bf16_inplace(a) if self.bf16 else a

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
            self.state = [sub.decode_select(st, sentences) for sub, st in zip(self.m._dec, self.state)]
            if self.src_mask is not None:
                self.src_mask = np.ascontiguousarray(self.src_mask[sentences])
            self.B = len(sentences)
        self.R = len(rows)

    def step(self, tokens):
        """tokens (R,) -> logits (R, V) of the next token."""
        m, t, R, d = self.m, self.t, self.R, self.m.d_model
        x = self.buf.x[:R]
        embedding_forward(tokens.reshape(R, 1), m._tgt_emb.data, m.positions[t:t + 1], out=x.reshape(R, 1, d))
        self.key_rows[:R, t] = self.slots[:R]  # row r writes position t into slot r
        for sub, packed, state in zip(m._dec, self.packed, self.state):
            sub.decode_step(self, packed, state, x)
        if m.final_norm:
            buf = self.buf
            x = layer_norm_into(x, m._dec_norm.w, m._dec_norm.b, m.layer_norm_eps, None, buf.inp[:R],
                                buf.mean[:R], buf.rstd[:R])
        self.t += 1
        return linear_packed(x, self.gen, np.empty((R, m.tgt_vocab_size), dtype=np.float32), m._gen.b)


def _weight_packer(compute_dtype):
    """weight (out, in) -> its W^T packed for x W^T products in compute_dtype."""
    return lambda weight: pack_matrix(weight, trans_b=True, compute_dtype=compute_dtype)


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
