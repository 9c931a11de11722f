"""The activation workspace of the compiled Transformer.

One float32 arena holds every activation a backward needs and every
gradient scratch buffer. A *plan* carves it into named views for one input
shape (B, S, T); plans are cached per shape, and the arena only grows (to
the largest plan asked for), so a training loop allocates no large array
after its first step of each shape: a smaller batch reuses the front of the
arena. Plans of different shapes overlap, so nothing in a plan may carry
information from one step to the next.
"""
import numpy as np

_ALIGN = 16  # floats: every view starts on a 64-byte boundary (a cache line, one AVX-512 vector)


def _padded(n):
    return -(-n // _ALIGN) * _ALIGN


def _aligned_empty(n, dtype):
    """np.empty(n, dtype) starting on a 64-byte boundary (NumPy promises 16)."""
    raw = np.empty(n + _ALIGN, dtype=dtype)
    skip = (-raw.ctypes.data % 64) // raw.itemsize
    return raw[skip:skip + n]


class Workspace:
    """An arena of `dtype` (float32 by default) carved into per-shape plans.

    plan(key, specs, build): `specs` is [(name, shape)] or [(name, shape,
    dtype)] (a dtype narrower than the arena's, np.uint16 for bf16 values,
    takes whole arena elements); `build(views)` gets {name: C-contiguous
    view of shape} and returns the plan object,
    which is cached under `key` until the arena has to grow (growing
    reallocates it and drops every cached plan, whose views would point into
    the old arena).
    """

    def __init__(self, max_plans=32, dtype=np.float32):
        self._arena = np.empty(0, dtype=dtype)
        self._plans = {}
        self._max_plans = max_plans  # shapes vary with bucketing; keep the cache bounded

    @property
    def dtype(self):
        return self._arena.dtype

    @property
    def nbytes(self):
        return self._arena.nbytes

    def plan(self, key, specs, build):
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        specs = [(name, shape, np.dtype(rest[0] if rest else self.dtype)) for name, shape, *rest in specs()]
        itemsize = self.dtype.itemsize
        counts = [int(np.prod(shape)) for _, shape, _ in specs]
        sizes = [-(-n * dtype.itemsize // itemsize) for (_, _, dtype), n in zip(specs, counts)]
        total = sum(_padded(n) for n in sizes)
        if total > self._arena.size:
            self._arena = _aligned_empty(total, self._arena.dtype)
            self._plans.clear()
        elif len(self._plans) >= self._max_plans:
            self._plans.clear()
        views, offset = {}, 0
        for (name, shape, dtype), n, size in zip(specs, counts, sizes):
            views[name] = self._arena[offset:offset + size].view(dtype)[:n].reshape(shape)
            offset += _padded(size)
        plan = self._plans[key] = build(views)
        return plan
