"""The PyTorch twin of ``fastformer.reference.Transformer`` (SPEC sections 1-2).

``TorchTwin`` wraps the ``encoder`` and ``decoder`` of a ``torch.nn.Transformer``
with ``src_embedding``, ``tgt_embedding`` and ``generator``, so its
``state_dict()`` keys are the SPEC names exactly: weights move between the two
models with no renaming table. It is the PyTorch side of the benchmarks and
the oracle of the parity tests; importing this module needs torch.
"""
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def sinusoidal_positions(length, d_model, dtype):
    """PE (length, d_model): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same)."""
    pos = torch.arange(length, dtype=dtype)[:, None]
    div = torch.pow(torch.tensor(10000.0, dtype=dtype),
                    torch.arange(0, d_model, 2, dtype=dtype) / d_model)
    pe = torch.zeros(length, d_model, dtype=dtype)
    pe[:, 0::2] = torch.sin(pos / div)
    pe[:, 1::2] = torch.cos(pos / div)[:, : d_model // 2]
    return pe


class TorchTwin(nn.Module):
    """Encoder-decoder Transformer built from ``torch.nn.Transformer``.

    Same constructor arguments as ``fastformer.reference.Transformer`` (seed is
    accepted and ignored: weights come from ``twin_of`` or torch's own init),
    except that ``dropout`` defaults to 0, which makes the twin deterministic
    for the parity tests. Dropout, when on, is where SPEC puts it: after the
    embeddings, on attention probabilities and on every sublayer's output.

    The module starts in train mode: with dropout 0 that is deterministic, and
    it keeps torch off its inference "fast path", which turns padded inputs
    into nested tensors and zeroes the padded positions instead of computing
    them.
    """

    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, nhead=8,
                 num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.0, activation="relu", norm_first=False, layer_norm_eps=1e-5,
                 final_norm=True, tie_embeddings=False, max_len=None, seed=0,
                 dtype=np.float32):
        super().__init__()
        self.d_model = d_model
        self.tie_embeddings = tie_embeddings
        tdtype = _TORCH_DTYPES[np.dtype(dtype)]
        with warnings.catch_warnings():  # "enable_nested_tensor is True, but ..." for norm_first
            warnings.simplefilter("ignore", UserWarning)
            t = nn.Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers,
                               dim_feedforward, dropout=dropout, activation=activation,
                               layer_norm_eps=layer_norm_eps, batch_first=True,
                               norm_first=norm_first, dtype=tdtype)
        self.encoder, self.decoder = t.encoder, t.decoder
        if not final_norm:
            self.encoder.norm = None
            self.decoder.norm = None
        self.src_embedding = nn.Embedding(src_vocab_size, d_model, dtype=tdtype)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, d_model, dtype=tdtype)
        self.generator = nn.Linear(d_model, tgt_vocab_size, dtype=tdtype)
        if tie_embeddings:  # SPEC: no generator.weight when tied
            self.generator.register_parameter("weight", None)
        self.embedding_dropout = nn.Dropout(dropout)  # no parameters: state_dict keys unchanged
        # Positions computed once, as a PyTorch user would; not part of the state_dict.
        self.register_buffer("positions", sinusoidal_positions(max_len or 1024, d_model, tdtype),
                             persistent=False)
        self.train()

    def embed(self, emb, tokens, offset=0):
        """tokens (B, L) int64 -> (B, L, d): Dropout(E[tok] * sqrt(d) + PE[offset + pos])."""
        x = emb(tokens) * math.sqrt(self.d_model)
        end = offset + tokens.shape[1]
        if end > self.positions.shape[0]:
            self.positions = sinusoidal_positions(end, self.d_model, self.positions.dtype)
        return self.embedding_dropout(x + self.positions[offset:end])

    def encode(self, src, src_key_padding_mask=None):
        """src (B, S) int64 -> memory (B, S, d)."""
        return self.encoder(self.embed(self.src_embedding, src), src_key_padding_mask=src_key_padding_mask)

    def decode(self, tgt_in, memory, src_key_padding_mask=None, tgt_key_padding_mask=None):
        """tgt_in (B, T) int64, memory (B, S, d) -> logits (B, T, V_tgt); causal self-attention."""
        T = tgt_in.shape[1]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=tgt_in.device), diagonal=1)
        y = self.decoder(self.embed(self.tgt_embedding, tgt_in), memory, tgt_mask=causal,
                         tgt_key_padding_mask=tgt_key_padding_mask,
                         memory_key_padding_mask=src_key_padding_mask, tgt_is_causal=True)
        w = self.tgt_embedding.weight if self.tie_embeddings else self.generator.weight
        return F.linear(y, w, self.generator.bias)

    def forward(self, src, tgt_in, src_key_padding_mask=None, tgt_key_padding_mask=None):
        """src (B, S), tgt_in (B, T) int64; masks (B, S)/(B, T) bool, True = padding.

        Returns logits (B, T, V_tgt).
        """
        memory = self.encode(src, src_key_padding_mask)
        return self.decode(tgt_in, memory, src_key_padding_mask, tgt_key_padding_mask)


def twin_of(state_dict, **config):
    """Build a TorchTwin from ``config`` and load ``state_dict`` (name -> ndarray).

    The key sets must be equal (no renaming); the dtype is the arrays' dtype.
    """
    dtype = next(iter(state_dict.values())).dtype
    twin = TorchTwin(**{**config, "dtype": dtype})
    ours, theirs = set(state_dict), set(twin.state_dict())
    if ours != theirs:
        raise ValueError(f"state_dict keys differ: only ours: {sorted(ours - theirs)}; "
                         f"only torch: {sorted(theirs - ours)}")
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()},
                         strict=True)
    return twin


@torch.inference_mode()
def greedy_decode(model, src, max_len, bos_id, eos_id, src_key_padding_mask=None):
    """PyTorch's usual greedy loop: the encoder runs once, then the decoder
    re-runs on the whole growing prefix for every new token (no key/value
    cache). Same convention as ``fastformer.decoding.greedy_decode``: returns
    (B, L) int64 of generated tokens, L <= max_len, stopping once every row
    has emitted eos_id (finished rows pad with eos_id).

    The caller chooses the mode (``model.eval()`` for decoding without dropout).
    """
    memory = model.encode(src, src_key_padding_mask)
    prefix = torch.full((src.shape[0], 1), bos_id, dtype=torch.int64)
    done = torch.zeros(src.shape[0], dtype=torch.bool)
    for _ in range(max_len):
        nxt = model.decode(prefix, memory, src_key_padding_mask)[:, -1].argmax(dim=-1)
        nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
        prefix = torch.cat([prefix, nxt[:, None]], dim=1)
        done |= nxt == eos_id
        if bool(done.all()):
            break
    return prefix[:, 1:]
