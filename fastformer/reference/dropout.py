"""Counter-based inverted dropout. This scheme is part of the contract: the
compiled kernels reproduce these masks bit for bit, for any thread count.

Generator: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random
numbers: as easy as 1, 2, 3", SC 2011): a 4 x 32-bit counter and a 2 x 32-bit
key give 4 x 32-bit output words after 10 rounds (multipliers 0xD2511F53 and
0xCD9E8D57, key increments 0x9E3779B9 and 0xBB67AE85), matching Random123's
``philox4x32_R(10, ...)``.

Mask of a tensor (any shape; i is an element's flat C-order index):

    key     = (seed & 0xffffffff, (seed >> 32) & 0xffffffff)
    counter = ((i >> 2) & 0xffffffff, (i >> 34) & 0xffffffff,
               site & 0xffffffff, step & 0xffffffff)
    word    = output word (i & 3) of Philox4x32-10(counter, key)
    keep    = word >= floor(p * 2**32)       (0 <= p < 1; p == 1 drops all)
    y       = x * s if keep else 0,  s = 1 / (1 - p) in float64 cast to x's dtype

So four consecutive elements share one Philox call. ``seed`` is the model's
seed, ``step`` counts training-mode forward passes, and ``site`` tells apart
the dropout layers of one pass (see ``dropout_site``). Backward regenerates
the mask from (seed, step, site) instead of storing it.
"""
import numpy as np

from fastformer.reference.activations import into_out

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_LO = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)
_MASK32 = 0xFFFFFFFF


def philox4x32(c0, c1, c2, c3, k0, k1, rounds=10):
    """Philox4x32 with `rounds` rounds (10 is the standard one).

    c0..c3: counter words, k0, k1: key words; each a uint32 value or an array
    of uint32 values (any integer dtype; broadcast together). Returns four
    uint32 arrays, the output words 0..3.
    """
    # uint64 holds the full 32 x 32 -> 64-bit product of each multiply.
    c0, c1, c2, c3 = (np.asarray(c).astype(np.uint64) & _LO for c in (c0, c1, c2, c3))
    k0, k1 = int(k0) & _MASK32, int(k1) & _MASK32
    for r in range(rounds):
        if r:
            k0 = (k0 + _W0) & _MASK32
            k1 = (k1 + _W1) & _MASK32
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = ((p1 >> _SHIFT) ^ c1 ^ np.uint64(k0), p1 & _LO,
                          (p0 >> _SHIFT) ^ c3 ^ np.uint64(k1), p0 & _LO)
    return tuple(np.asarray(c, dtype=np.uint32) for c in (c0, c1, c2, c3))


def _threshold(p):
    """The uint32 threshold floor(p * 2**32) for 0 <= p < 1."""
    return np.uint32(int(p * 2.0 ** 32))


def check_p(p):
    """Raise ValueError unless 0 <= p <= 1."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")


def dropout_bits(shape, seed, step, site):
    """The uint32 word of every element of a tensor of `shape` (see module doc)."""
    n = int(np.prod(shape, dtype=np.int64))
    block = np.arange((n + 3) // 4, dtype=np.uint64)
    words = philox4x32(block & _LO, block >> _SHIFT, int(site) & _MASK32, int(step) & _MASK32,
                       int(seed) & _MASK32, (int(seed) >> 32) & _MASK32)
    return np.stack(words, axis=-1).reshape(-1)[:n].reshape(shape)


def dropout_mask(shape, p, seed, step, site):
    """bool keep mask of `shape`: True where the element survives dropout p."""
    check_p(p)
    if p == 1.0:
        return np.zeros(shape, dtype=bool)
    return dropout_bits(shape, seed, step, site) >= _threshold(p)


def dropout_apply(x, keep, p):
    """x: any shape, keep: bool mask of x's shape -> x * (1 / (1 - p)) where
    keep, else 0 (the scale computed in float64, cast to x's dtype)."""
    if p == 1.0:
        return np.zeros_like(x)
    scale = x.dtype.type(1.0 / (1.0 - p))
    return np.where(keep, x * scale, x.dtype.type(0))


def dropout_forward(x, p, seed, step, site, *, out=None):
    """x: any shape -> y like x: x / (1 - p) where kept, else 0 (in out,
    when given; out may be x)."""
    check_p(p)
    if p == 0.0:
        return into_out(out, x.copy())
    return into_out(out, dropout_apply(x, dropout_mask(x.shape, p, seed, step, site), p))


def dropout_backward(dy, p, seed, step, site, *, out=None):
    """dy: any shape -> dx like dy, with the forward's mask regenerated."""
    return dropout_forward(dy, p, seed, step, site, out=out)


# dropout_site(part, layer, slot): the numbering of the model's dropout layers.
PART_EMBEDDING, PART_ENCODER, PART_DECODER = 0, 1, 2
# Slots of an encoder or decoder layer (an encoder layer uses 0, 1 and 4).
SLOT_SELF_ATTN_PROBS = 0    # attention probabilities of self-attention
SLOT_SELF_ATTN_OUT = 1      # output of the self-attention sublayer
SLOT_CROSS_ATTN_PROBS = 2   # attention probabilities of cross-attention (decoder)
SLOT_CROSS_ATTN_OUT = 3     # output of the cross-attention sublayer (decoder)
SLOT_FFN_OUT = 4            # output of the feed-forward sublayer
# Slots of the embedding part (layer 0).
SLOT_SRC_EMBEDDING = 0
SLOT_TGT_EMBEDDING = 1


def dropout_site(part, layer=0, slot=0):
    """The `site` id of one dropout layer of the model:
    site = part << 24 | layer << 8 | slot.

    part: PART_EMBEDDING (0), PART_ENCODER (1) or PART_DECODER (2);
    layer: the encoder or decoder layer index i (0 for embeddings), < 2**16;
    slot: for embeddings SLOT_SRC_EMBEDDING (0) / SLOT_TGT_EMBEDDING (1); in a
    layer SLOT_SELF_ATTN_PROBS (0), SLOT_SELF_ATTN_OUT (1),
    SLOT_CROSS_ATTN_PROBS (2), SLOT_CROSS_ATTN_OUT (3), SLOT_FFN_OUT (4).
    E.g. the FFN output of decoder layer 3 is dropout_site(2, 3, 4) = 0x02000304.
    """
    if part not in (PART_EMBEDDING, PART_ENCODER, PART_DECODER):
        raise ValueError(f"part must be 0, 1 or 2, got {part!r}")
    if not 0 <= layer < 1 << 16:
        raise ValueError(f"layer must be in [0, 65536), got {layer!r}")
    if not 0 <= slot < 1 << 8:
        raise ValueError(f"slot must be in [0, 256), got {slot!r}")
    return part << 24 | layer << 8 | slot
