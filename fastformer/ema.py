"""An exponential moving average of a model's weights, kept beside the
training weights in one flat buffer (the layout of `model.flat_parameters()`).

After optimizer update n (n = 1, 2, ...):

    ema = d_n * ema + (1 - d_n) * w,   d_n = min(decay, (1 + n) / (10 + n)) with warmup, else decay

in the weights' dtype (float32 for the compiled model), two NumPy passes:
ema *= d_n, then ema += (1 - d_n) * w, with d_n and 1 - d_n computed in
float64 and rounded to the dtype once. The warm-up (TensorFlow's
ExponentialMovingAverage with num_updates) lets a short run's average
forget the random initial weights: without it a decay of 0.9999 would
still hold 37% of them after 10,000 updates. The average starts as a copy
of the weights (`reset`, done by the trainer before its first update).
"""
import contextlib
import numbers

import numpy as np

from fastformer._kernels import flat_buffers


def check_decay(decay):
    """decay as a float in (0, 1), or ValueError naming `ema`."""
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0.0 < decay < 1.0:
        raise ValueError(f"ema must be a decay in (0, 1) (e.g. 0.9999) or None, got {decay!r}")
    return float(decay)


class ExponentialMovingAverage:
    """The moving average of `model`'s weights (see the module docstring).

    decay: in (0, 1); warmup: use min(decay, (1 + n) / (10 + n)) at update n.
    `updates` counts the updates made; `update()` makes one from the model's
    current weights; `swapped()` is a context in which the model holds the
    average (the training weights are put back bit for bit after);
    `state_dict()` / `load_state_dict()` use the model's parameter names.
    """

    def __init__(self, model, decay, warmup=True):
        self.model = model
        self.decay = check_decay(decay)
        self.warmup = bool(warmup)
        weights, _ = flat_buffers(model)
        self.average = weights.copy()
        self._scratch = np.empty_like(weights)
        self.updates = 0
        base = weights.ctypes.data
        # name -> (offset, shape): each parameter's place in the flat buffer
        self._places = {name: ((p.data.ctypes.data - base) // weights.itemsize, p.data.shape)
                        for name, p in model.named_parameters()}

    def decay_at(self, n):
        """The decay d_n of update n (1-based), a Python float."""
        return min(self.decay, (1.0 + n) / (10.0 + n)) if self.warmup else self.decay

    def reset(self):
        """Start over from the model's current weights (no updates made)."""
        np.copyto(self.average, flat_buffers(self.model)[0])
        self.updates = 0

    def update(self):
        """One update from the model's current weights."""
        weights, _ = flat_buffers(self.model)
        d = self.decay_at(self.updates + 1)
        dtype = self.average.dtype.type
        np.multiply(self.average, dtype(d), out=self.average)
        np.multiply(weights, dtype(1.0 - d), out=self._scratch)
        np.add(self.average, self._scratch, out=self.average)
        self.updates += 1

    @contextlib.contextmanager
    def swapped(self):
        """Inside: the model's weights are the average; after, the training weights again, exactly."""
        weights, _ = flat_buffers(self.model)
        np.copyto(self._scratch, weights)
        np.copyto(weights, self.average)
        try:
            yield self.model
        finally:
            np.copyto(weights, self._scratch)

    def state_dict(self):
        """{parameter name: copy of its average}, the model's names and shapes."""
        return {name: self.average[o:o + int(np.prod(shape))].reshape(shape).copy()
                for name, (o, shape) in self._places.items()}

    def check_state_dict(self, state, where):
        """ValueError naming `where` unless `state` has exactly the model's names and shapes."""
        missing = [n for n in self._places if n not in state]
        extra = [n for n in state if n not in self._places]
        if missing or extra:
            raise ValueError(f"{where}: the EMA weights do not match the model: missing {missing}, "
                             f"unexpected {extra}")
        for name, (_, shape) in self._places.items():
            if tuple(state[name].shape) != tuple(shape):
                raise ValueError(f"{where}: EMA weight {name!r} has shape {tuple(state[name].shape)}, "
                                 f"the model expects {tuple(shape)}")

    def load_state_dict(self, state, updates, where="EMA state"):
        """Set the average from `state` (checked first: nothing changes on error)."""
        self.check_state_dict(state, where)
        for name, (o, shape) in self._places.items():
            self.average[o:o + int(np.prod(shape))] = np.asarray(state[name], dtype=self.average.dtype).ravel()
        self.updates = int(updates)
