"""fastformer: train encoder-decoder Transformers on CPUs.

Compiled kernels live in `fastformer.ops`, their pure-NumPy twins in
`fastformer.reference`.
"""
from fastformer import _affinity  # noqa: F401  (first: before the OpenMP runtime may pin this thread)
from fastformer._version import __version__
from fastformer._runtime import build_info, get_num_threads, get_simd, set_num_threads, set_simd, simd_levels
from fastformer import ops, reference
from fastformer import data, optim
from fastformer.model import Transformer
from fastformer.trainer import Trainer

# The fused softmax + cross-entropy loss and its gradient (SPEC section 3).
cross_entropy = ops.cross_entropy

__all__ = [
    "__version__",
    "build_info",
    "get_num_threads",
    "set_num_threads",
    "get_simd",
    "set_simd",
    "simd_levels",
    "ops",
    "reference",
    "optim",
    "data",
    "Transformer",
    "cross_entropy",
    "Trainer",
]
