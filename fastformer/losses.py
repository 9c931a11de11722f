"""The training loss, through the compiled kernel when it fits the dtype, and
the logits buffer a training or evaluation loop reuses."""
import numpy as np

from fastformer._kernels import kernel
from fastformer.data.batch import IGNORE_INDEX
from fastformer.model.workspace import Workspace


def cross_entropy(logits, targets, label_smoothing=0.0, ignore_index=IGNORE_INDEX, *, out=None, normalizer=None):
    """logits (B, T, V), targets (B, T) -> (loss: float, dlogits like logits),
    dlogits written into `out` when given (`out=logits`: in place, no new
    (B, T, V) array); normalizer: what the summed loss is divided by (default
    the count of targets not ignored).

    `fastformer.ops.cross_entropy` for float32 logits when compiled, else the
    NumPy reference (PyTorch's cross_entropy: mean over non-ignored targets)."""
    return kernel("cross_entropy", np.asarray(logits).dtype)(
        logits, targets, ignore_index=ignore_index, label_smoothing=label_smoothing, out=out, normalizer=normalizer)


class LogitsBuffer:
    """The logits of a loop's forwards, in one grow-only array whose front
    serves every batch shape: a loop allocates (and page-faults) no
    (B, T, V) array per step. forward(model, batch) -> logits, valid until
    the next forward."""

    def __init__(self):
        self._space = None

    def forward(self, model, batch):
        """model.forward on a Batch's src, tgt_in and masks, into the buffer."""
        dtype = np.dtype(model.dtype)
        if self._space is None or self._space.dtype != dtype:
            self._space = Workspace(dtype=dtype)
        shape = np.shape(batch.tgt_in)
        out = None
        if len(shape) == 2:  # anything else: the model's own check says what is wrong
            shape += (model.tgt_vocab_size,)
            out = self._space.plan(shape, lambda: [("logits", shape)], lambda views: views["logits"])
        return model.forward(batch.src, batch.tgt_in, src_key_padding_mask=batch.src_key_padding_mask,
                             tgt_key_padding_mask=batch.tgt_key_padding_mask, out=out)
