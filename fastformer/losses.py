"""The training loss, through the compiled kernel when it fits the dtype."""
import numpy as np

from fastformer._kernels import kernel
from fastformer.data.batch import IGNORE_INDEX


def cross_entropy(logits, targets, label_smoothing=0.0, ignore_index=IGNORE_INDEX, *, out=None):
    """logits (B, T, V), targets (B, T) -> (loss: float, dlogits like logits),
    dlogits written into `out` when given (`out=logits`: in place, no new
    (B, T, V) array; the trainer's way).

    `fastformer.ops.cross_entropy` for float32 logits when compiled, else the
    NumPy reference (PyTorch's cross_entropy: mean over non-ignored targets)."""
    return kernel("cross_entropy", np.asarray(logits).dtype)(
        logits, targets, ignore_index=ignore_index, label_smoothing=label_smoothing, out=out)
