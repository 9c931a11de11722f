"""The whole encoder-decoder Transformer in NumPy (SPEC sections 1-3).

Parameters and gradients are views into two flat buffers laid out in SPEC
section 2 order, so zero_grad is one fill and an optimizer one flat loop.
Dropout masks are counter-based (see `fastformer.reference.dropout`): key =
the model's seed, step = `rng_step` of the forward that drew them, site =
`dropout_site(part, layer, slot)`; backward regenerates them.
"""
from collections import namedtuple
from collections.abc import Mapping
from functools import partial

import numpy as np

from fastformer.reference.activations import check_activation
from fastformer.reference.attention import mha_backward, mha_forward
from fastformer.reference.dropout import (
    PART_DECODER, PART_EMBEDDING, PART_ENCODER, SLOT_CROSS_ATTN_OUT, SLOT_CROSS_ATTN_PROBS,
    SLOT_FFN_OUT, SLOT_SELF_ATTN_OUT, SLOT_SELF_ATTN_PROBS, SLOT_SRC_EMBEDDING,
    SLOT_TGT_EMBEDDING, dropout_backward, dropout_forward, dropout_site)
from fastformer.reference.embedding import embedding_backward, embedding_forward, sinusoidal_positions
from fastformer.reference.ffn import ffn_backward, ffn_forward
from fastformer.reference.layernorm import layer_norm_backward, layer_norm_forward
from fastformer.reference.linear import linear_backward, linear_forward

LoadResult = namedtuple("LoadResult", "missing_keys unexpected_keys")


class Parameter:
    """One named tensor: `data` and `grad` are views into the model's flat buffers."""

    __slots__ = ("data", "grad")

    def __init__(self, data, grad):
        self.data = data
        self.grad = grad

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_ids(name, ids, vocab_size, max_len):
    """Token ids: a 2-D integer array with entries in [0, vocab_size), at most max_len long."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of token ids, got dtype {ids.dtype}")
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"{name} must have shape (B, L) with L >= 1, got {ids.shape}")
    if ids.shape[1] > max_len:
        raise ValueError(f"{name} has length {ids.shape[1]}, more than max_len={max_len}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{name} must hold token ids in [0, {vocab_size}), "
                         f"got values in [{ids.min()}, {ids.max()}]")
    return ids


def _check_mask(name, mask, shape):
    """A padding mask: None, or a bool array of `shape` (True = padding)."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool array (True = padding), got dtype {mask.dtype}")
    if mask.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {mask.shape}")
    return mask


class Transformer:
    """Encoder-decoder Transformer, the NumPy reference of `fastformer.Transformer`.

    Same constructor and methods as the compiled model, plus `dtype`
    (np.float32 or np.float64). Initialisation as torch.nn.Transformer:
    xavier-uniform matrices, zero biases, LayerNorm ones/zeros; embeddings
    normal(0, d_model**-0.5); drawn in SPEC order from default_rng(seed).
    """

    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, nhead=8,
                 num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", norm_first=False, layer_norm_eps=1e-5,
                 final_norm=True, tie_embeddings=False, max_len=1024, seed=0,
                 dtype=np.float32):
        for name, value in [("src_vocab_size", src_vocab_size), ("tgt_vocab_size", tgt_vocab_size),
                            ("d_model", d_model), ("nhead", nhead),
                            ("dim_feedforward", dim_feedforward), ("max_len", max_len)]:
            _check_positive_int(name, value)
        for name, value in [("num_encoder_layers", num_encoder_layers),
                            ("num_decoder_layers", num_decoder_layers)]:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if d_model % nhead:
            raise ValueError(f"nhead={nhead} must divide d_model={d_model}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        check_activation(activation)
        if not layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {layer_norm_eps!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.src_vocab_size, self.tgt_vocab_size = int(src_vocab_size), int(tgt_vocab_size)
        self.d_model, self.nhead, self.dim_feedforward = int(d_model), int(nhead), int(dim_feedforward)
        self.num_encoder_layers, self.num_decoder_layers = int(num_encoder_layers), int(num_decoder_layers)
        self.dropout, self.activation, self.norm_first = float(dropout), activation, bool(norm_first)
        self.layer_norm_eps, self.final_norm = float(layer_norm_eps), bool(final_norm)
        self.tie_embeddings, self.max_len, self.seed = bool(tie_embeddings), int(max_len), int(seed)
        self.dtype = dtype
        self.training = True
        self.rng_step = 0  # training-mode forwards so far: the `step` of the dropout masks
        self._cache = None

        specs = self._parameter_specs()
        total = sum(int(np.prod(shape)) for _, shape, _ in specs)
        self._flat = np.empty(total, dtype=dtype)
        self._flat_grad = np.zeros(total, dtype=dtype)
        self._params = {}
        offset = 0
        for name, shape, _ in specs:
            n = int(np.prod(shape))
            self._params[name] = Parameter(self._flat[offset:offset + n].reshape(shape),
                                           self._flat_grad[offset:offset + n].reshape(shape))
            offset += n
        rng = np.random.default_rng(self.seed)
        for name, shape, init in specs:
            self._params[name].data[...] = self._initial_value(rng, shape, init)
        self.positions = sinusoidal_positions(self.max_len, self.d_model, dtype)

    # ----- parameters -------------------------------------------------------------

    def _parameter_specs(self):
        """[(name, shape, init)] in SPEC section 2 order."""
        d, f = self.d_model, self.dim_feedforward

        def attn(prefix):
            return [(f"{prefix}.in_proj_weight", (3 * d, d), "xavier"),
                    (f"{prefix}.in_proj_bias", (3 * d,), "zeros"),
                    (f"{prefix}.out_proj.weight", (d, d), "xavier"),
                    (f"{prefix}.out_proj.bias", (d,), "zeros")]

        def ffn_and_norms(prefix, norms):
            specs = [(f"{prefix}.linear1.weight", (f, d), "xavier"),
                     (f"{prefix}.linear1.bias", (f,), "zeros"),
                     (f"{prefix}.linear2.weight", (d, f), "xavier"),
                     (f"{prefix}.linear2.bias", (d,), "zeros")]
            for norm in norms:
                specs += norm_of(f"{prefix}.{norm}")
            return specs

        def norm_of(prefix):
            return [(f"{prefix}.weight", (d,), "ones"), (f"{prefix}.bias", (d,), "zeros")]

        specs = []
        for i in range(self.num_encoder_layers):
            p = f"encoder.layers.{i}"
            specs += attn(f"{p}.self_attn") + ffn_and_norms(p, ("norm1", "norm2"))
        if self.final_norm:
            specs += norm_of("encoder.norm")
        for i in range(self.num_decoder_layers):
            p = f"decoder.layers.{i}"
            specs += (attn(f"{p}.self_attn") + attn(f"{p}.multihead_attn")
                      + ffn_and_norms(p, ("norm1", "norm2", "norm3")))
        if self.final_norm:
            specs += norm_of("decoder.norm")
        specs += [("src_embedding.weight", (self.src_vocab_size, d), "normal"),
                  ("tgt_embedding.weight", (self.tgt_vocab_size, d), "normal")]
        if not self.tie_embeddings:
            specs.append(("generator.weight", (self.tgt_vocab_size, d), "xavier"))
        specs.append(("generator.bias", (self.tgt_vocab_size,), "zeros"))
        return specs

    def _initial_value(self, rng, shape, init):
        if init == "xavier":  # fan_out = shape[0], fan_in = shape[1], as torch
            bound = np.sqrt(6.0 / (shape[0] + shape[1]))
            return rng.uniform(-bound, bound, size=shape)
        if init == "normal":
            return rng.normal(0.0, self.d_model ** -0.5, size=shape)
        return np.ones(shape) if init == "ones" else np.zeros(shape)

    def named_parameters(self):
        """Yield (name, Parameter) in SPEC section 2 order."""
        yield from self._params.items()

    def parameters(self):
        """Yield every Parameter in SPEC section 2 order."""
        yield from self._params.values()

    def zero_grad(self):
        """Set every gradient to 0 (one fill of the flat gradient buffer)."""
        self._flat_grad.fill(0)

    def state_dict(self):
        """{name: copy of the parameter}, SPEC names and order."""
        return {name: p.data.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy `state_dict` (name -> array) into the parameters.

        Everything is checked before anything is copied: a missing or unexpected
        name (when strict), a non-numeric value (TypeError), a shape mismatch or
        a non-finite value (ValueError). Returns (missing_keys, unexpected_keys).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of name -> array, "
                            f"got {type(state_dict).__name__}")
        missing = [n for n in self._params if n not in state_dict]
        unexpected = [n for n in state_dict if n not in self._params]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict does not match the model: missing {missing}, "
                             f"unexpected {unexpected}")
        values = {}
        for name in self._params:
            if name not in state_dict:
                continue
            value = np.asarray(state_dict[name])
            if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
                raise TypeError(f"state_dict[{name!r}] must be a numeric array, got dtype {value.dtype}")
            if value.shape != self._params[name].shape:
                raise ValueError(f"state_dict[{name!r}] must have shape {self._params[name].shape}, "
                                 f"got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"state_dict[{name!r}] holds non-finite values (NaN or inf)")
            values[name] = value
        for name, value in values.items():
            self._params[name].data[...] = value
        return LoadResult(missing, unexpected)

    def train(self, mode=True):
        """Training mode (dropout on); returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode (no dropout); returns self."""
        return self.train(False)

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
                           self.seed, c["step"], site)

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
                                    self._w(f"{prefix}.linear2.bias"), self.activation)
        return y, (h, hidden_pre)

    def _ffn_backward(self, prefix, dy, cache):
        h, hidden_pre = cache
        dh, *grads = ffn_backward(dy, h, hidden_pre, self._w(f"{prefix}.linear1.weight"),
                                  self._w(f"{prefix}.linear2.weight"), self.activation)
        self._accumulate([f"{prefix}.linear1.weight", f"{prefix}.linear1.bias",
                          f"{prefix}.linear2.weight", f"{prefix}.linear2.bias"], grads)
        return dh, None

    def _norm_forward(self, norm, x, residual=None):
        return layer_norm_forward(x, self._w(f"{norm}.weight"), self._w(f"{norm}.bias"),
                                  self.layer_norm_eps, residual)

    def _norm_backward(self, norm, dy, x, mean, rstd, residual=None):
        dx, dw, db = layer_norm_backward(dy, x, self._w(f"{norm}.weight"), mean, rstd, residual)
        self._accumulate([f"{norm}.weight", f"{norm}.bias"], [dw, db])
        return dx

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

    def forward(self, src, tgt_in, src_key_padding_mask=None, tgt_key_padding_mask=None):
        """src: (B, S), tgt_in: (B, T) integer token ids; masks (B, S) / (B, T)
        bool, True = padding (the source mask also hides memory keys from
        cross-attention; decoder self-attention is always causal).
        Returns logits (B, T, tgt_vocab_size) in the model's dtype.

        In training mode dropout uses step = rng_step, which then advances by 1.
        """
        src = _check_ids("src", src, self.src_vocab_size, self.max_len)
        tgt_in = _check_ids("tgt_in", tgt_in, self.tgt_vocab_size, self.max_len)
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError(f"src and tgt_in must have one batch size, got {src.shape[0]} "
                             f"and {tgt_in.shape[0]}")
        src_mask = _check_mask("src_key_padding_mask", src_key_padding_mask, src.shape)
        tgt_mask = _check_mask("tgt_key_padding_mask", tgt_key_padding_mask, tgt_in.shape)
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
            out, mean, rstd = self._norm_forward("decoder.norm", y)
            c["decoder_norm"] = (y, mean, rstd)
        else:
            out = y
        c["out"] = out
        logits = linear_forward(out, self._w(self._generator_weight), self._w("generator.bias"))
        c["logits_shape"] = logits.shape
        return logits

    @property
    def _generator_weight(self):
        return "tgt_embedding.weight" if self.tie_embeddings else "generator.weight"

    def backward(self, dlogits):
        """dlogits: (B, T, tgt_vocab_size), the gradient of the loss w.r.t. the
        last forward's logits. Accumulates into every parameter's `grad`
        (call zero_grad first for a fresh gradient); frees the forward's cache."""
        c = self._cache
        if c is None:
            raise RuntimeError("backward needs a forward first (each forward allows one backward)")
        dlogits = np.asarray(dlogits)
        if not np.issubdtype(dlogits.dtype, np.floating):
            raise TypeError(f"dlogits must be a float array, got dtype {dlogits.dtype}")
        if dlogits.shape != c["logits_shape"]:
            raise ValueError(f"dlogits must have the logits' shape {c['logits_shape']}, "
                             f"got {dlogits.shape}")
        dlogits = dlogits.astype(self.dtype, copy=False)

        dout, dwg, dbg = linear_backward(dlogits, c["out"], self._w(self._generator_weight))
        self._accumulate([self._generator_weight, "generator.bias"], [dwg, dbg])
        dy = self._norm_backward("decoder.norm", dout, *c["decoder_norm"]) if self.final_norm else dout
        dmemory = None
        for i in reversed(range(self.num_decoder_layers)):
            dy, dm = self._decoder_layer_backward(i, dy, c["decoder"][i])
            dmemory = dm if dmemory is None else dmemory + dm
        dy = self._drop(dy, dropout_site(PART_EMBEDDING, 0, SLOT_TGT_EMBEDDING), backward=True)
        embedding_backward(dy, c["tgt_in"], self.tgt_vocab_size,
                           out=self._params["tgt_embedding.weight"].grad)

        if dmemory is not None:
            dx = self._norm_backward("encoder.norm", dmemory, *c["encoder_norm"]) if self.final_norm else dmemory
            for i in reversed(range(self.num_encoder_layers)):
                dx = self._encoder_layer_backward(i, dx, c["encoder"][i])
            dx = self._drop(dx, dropout_site(PART_EMBEDDING, 0, SLOT_SRC_EMBEDDING), backward=True)
            embedding_backward(dx, c["src"], self.src_vocab_size,
                               out=self._params["src_embedding.weight"].grad)
        self._cache = None
