"""The named model/batch sizes of the `step` and `generate` benchmarks, the
FLOP count of a training step, and the synthetic batch they train on."""
import argparse
from typing import NamedTuple

import numpy as np

from fastformer.data import make_batch
from fastformer.data.vocab import BOS_ID, EOS_ID, PAD_ID


class Config(NamedTuple):
    """One benchmark size: the model (shared by src and tgt vocabularies) and the batch."""

    name: str
    d_model: int
    nhead: int
    encoder_layers: int
    decoder_layers: int
    d_ff: int
    batch: int
    src_len: int  # S
    tgt_len: int  # T
    vocab: int  # V, for source and target

    def model_kwargs(self, dropout, max_len=0, seed=0):
        """Constructor arguments of fastformer.Transformer / reference.Transformer / TorchTwin."""
        return dict(src_vocab_size=self.vocab, tgt_vocab_size=self.vocab, d_model=self.d_model,
                    nhead=self.nhead, num_encoder_layers=self.encoder_layers,
                    num_decoder_layers=self.decoder_layers, dim_feedforward=self.d_ff, dropout=dropout,
                    max_len=max(self.src_len, self.tgt_len, max_len), seed=seed)

    def describe(self, batch=True):
        """'d_model=128 heads=4 ...'; `batch` False leaves out B and T (decoding)."""
        text = (f"d_model={self.d_model} heads={self.nhead} layers={self.encoder_layers}+{self.decoder_layers} "
                f"d_ff={self.d_ff} ")
        text += f"B={self.batch} S={self.src_len} T={self.tgt_len}" if batch else f"S={self.src_len}"
        return text + f" V={self.vocab}"


CONFIGS = {c.name: c for c in [
    Config("tiny", 128, 4, 2, 2, 512, 64, 32, 32, 64),
    Config("small", 256, 8, 3, 3, 1024, 32, 64, 64, 1000),
    Config("base", 512, 8, 6, 6, 2048, 16, 128, 128, 8000),
    Config("long", 512, 8, 2, 2, 2048, 8, 512, 512, 8000),
    Config("micro", 32, 2, 1, 1, 64, 4, 8, 8, 16),  # for the tests; not listed in --help
]}
PUBLIC_CONFIGS = ["tiny", "small", "base", "long"]


def parse_configs(text):
    """'tiny,small' -> [Config, ...] (argparse type)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown configuration {', '.join(unknown) or repr(text)}; choose from {', '.join(PUBLIC_CONFIGS)}")
    return [CONFIGS[n] for n in names]


def forward_flops(c):
    """Matmul FLOPs (2 per multiply-add) of one forward pass of the whole
    batch; attention is counted in full, the causal half included.

    with N = B*S source tokens, M = B*T target tokens, d = d_model, f = d_ff:
      encoder layer:  8 N d^2 (QKV + output projection) + 4 N S d (Q K^T and P V) + 4 N d f (FFN)
      decoder layer:  8 M d^2 + 4 M T d (causal self-attention, counted as full)
                      + 4 M d^2 + 4 N d^2 (cross-attention: Q and output on the
                        target, K and V on the memory) + 4 M S d (Q K^T and P V)
                      + 4 M d f (FFN)
      generator:      2 M d V
    """
    d, f = c.d_model, c.d_ff
    n, m = c.batch * c.src_len, c.batch * c.tgt_len
    encoder = 8 * n * d * d + 4 * n * c.src_len * d + 4 * n * d * f
    decoder = (8 * m * d * d + 4 * m * c.tgt_len * d
               + 4 * m * d * d + 4 * n * d * d + 4 * m * c.src_len * d
               + 4 * m * d * f)
    return c.encoder_layers * encoder + c.decoder_layers * decoder + 2 * m * d * c.vocab


def step_flops(c):
    """Matmul FLOPs of one training step: forward + backward, backward
    counted as twice the forward (a gradient for the input and one for the
    weight of every product)."""
    return 3 * forward_flops(c)


def synthetic_batch(c, seed=0, padding=True):
    """A batch of random token sequences of the configuration's shape, via
    fastformer.data.make_batch (src (B, S), tgt_in/tgt_out (B, T), padding
    masks, tgt_out padded with the ignore index).

    With `padding`, row lengths are drawn from [3/4, 1] of the full length
    (row 0 has full length, so the arrays are exactly (B, S) and (B, T)):
    the masks and the ignored targets are exercised as in real training."""
    rng = np.random.default_rng(seed)
    first = max(PAD_ID, BOS_ID, EOS_ID) + 1  # ordinary tokens only
    src_lens = np.full(c.batch, c.src_len)
    tgt_lens = np.full(c.batch, c.tgt_len - 1)  # make_batch appends eos / prepends bos
    if padding:
        src_lens[1:] = rng.integers((3 * c.src_len) // 4, c.src_len + 1, c.batch - 1)
        tgt_lens[1:] = rng.integers((3 * (c.tgt_len - 1)) // 4, c.tgt_len, c.batch - 1)
    sources = [rng.integers(first, c.vocab, n).tolist() for n in src_lens]
    targets = [rng.integers(first, c.vocab, max(n, 0)).tolist() for n in tgt_lens]
    return make_batch(sources, targets)
