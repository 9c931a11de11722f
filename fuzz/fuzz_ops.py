"""Fuzz every compiled kernel in fastformer.ops: shapes that mostly fit
(so the C code runs) and sometimes do not, odd layouts (strided, misaligned,
read-only, empty), wrong dtypes, bf16 values (uint16) where float32 is
asked for, and out-of-range or non-finite scalars. Only
TypeError, ValueError or MemoryError may come out; a crash or a sanitizer
report is a finding. A call that succeeds must give the same bits again on
one thread."""
import numpy as np

from _harness import run, scalar, small_int


def bf16_values(a):
    """A float32 array's bf16 values (uint16, truncated: still values ops.to_bf16 may give)."""
    return (a.view(np.uint32) >> 16).astype(np.uint16)


class Inputs:
    """Arrays and scalars drawn from the fuzzer's bytes."""

    def __init__(self, fdp):
        self.fdp = fdp
        self.dims = [fdp.ConsumeIntInRange(0, 9) if fdp.ConsumeProbability() < 0.15
                     else fdp.ConsumeIntInRange(1, 9) for _ in range(5)]

    def dim(self, i):
        return self.dims[i]

    def array(self, shape, dtype=np.float32):
        fdp = self.fdp
        shape = tuple(shape)
        if fdp.ConsumeProbability() < 0.05:  # a shape that does not fit
            shape = shape[:-1] if shape and fdp.ConsumeBool() else shape + (fdp.ConsumeIntInRange(0, 3),)
        n = int(np.prod(shape)) if shape else 1
        values = np.array([fdp.ConsumeFloatInRange(-4.0, 4.0) for _ in range(min(n, 64))] or [0.0])
        a = np.resize(values, n).reshape(shape).astype(dtype)
        if a.size and fdp.ConsumeProbability() < 0.03:
            a.flat[fdp.ConsumeIntInRange(0, a.size - 1)] = fdp.PickValueInList([np.inf, -np.inf, np.nan])
        return self.layout(a)

    def layout(self, a):
        fdp = self.fdp
        choice = fdp.ConsumeIntInRange(0, 40)
        if choice == 0:
            return a.astype(fdp.PickValueInList([np.float64, np.float16, np.int64, np.bool_]))
        if choice == 1 and a.ndim >= 1:
            return np.repeat(a, 2, axis=-1)[..., ::2]  # same values, strided
        if choice == 2:  # same values, data 1 byte off alignment
            raw = np.zeros(a.nbytes + 1, np.uint8)[1:]
            out = raw.view(a.dtype).reshape(a.shape)
            out[...] = a
            return out
        if choice == 3:
            a.flags.writeable = False
        if choice == 4:
            return a.tolist()
        if choice == 5 and a.dtype == np.float32:
            return bf16_values(a)
        return a

    def bf16(self, a):
        """a's bf16 values (uint16) where it is a float32 array, now and then not."""
        if isinstance(a, np.ndarray) and a.dtype == np.float32 and self.fdp.ConsumeProbability() < 0.9:
            return bf16_values(a)
        return a

    def ids(self, shape, V):
        fdp = self.fdp
        n = int(np.prod(shape))
        hi = max(V - 1, 0)
        values = [fdp.ConsumeIntInRange(0, hi) for _ in range(min(n, 64))] or [0]
        a = np.resize(np.array(values, np.int64), n).reshape(shape)
        if a.size and fdp.ConsumeProbability() < 0.05:
            a.flat[0] = small_int(fdp, -3, V + 3, wild=0.5)
        return self.layout(a.astype(fdp.PickValueInList([np.int64, np.int64, np.int32, np.uint8])))

    def mask(self, shape):
        if self.fdp.ConsumeBool():
            return None
        bits = np.array([self.fdp.ConsumeBool() for _ in range(int(np.prod(shape)))], bool)
        return self.layout(bits.reshape(shape))

    def real(self, usual):
        return scalar(self.fdp) if self.fdp.ConsumeProbability() < 0.1 else usual

    def integer(self, usual):
        return small_int(self.fdp, usual, usual, wild=0.1)

    def flag(self):
        return self.fdp.PickValueInList([False, True, False, True, 0, 1, None, "yes"])


def attention_both(ops, dout, q, k, v, **kw):
    """The forward, then the backward on its out and lse."""
    out, lse = ops.attention_forward(q, k, v, **kw)
    kw["impl"] = None if kw["impl"] == "rows" else kw["impl"]  # the backward has no rows kernel
    return (out, lse) + tuple(ops.attention_backward(dout, q, k, v, out, lse, **kw))


def calls(ops, x):
    """name -> a thunk calling that kernel on drawn inputs."""
    B, H, T, S, d = x.dims
    V = max(x.dim(4), 1)
    act = x.fdp.PickValueInList([None, "relu", "gelu", "none", "tanh", 3])
    cd = x.fdp.PickValueInList(["float32", "bfloat16", "bfloat16", "fp16", None])  # compute_dtype
    return {
        "matmul": lambda: ops.matmul(x.array((T, d)), x.array((d, S)), trans_a=x.flag(), trans_b=x.flag(),
                                     alpha=x.real(1.0), beta=0.0, bias=x.array((S,)) if x.fdp.ConsumeBool() else None,
                                     activation=act, compute_dtype=cd),
        "matmul_packed": lambda: ops.matmul_packed(
            x.array((T, d)), ops.pack_matrix(x.array((d, S)), trans_b=x.flag(), compute_dtype=cd), alpha=x.real(1.0),
            bias=x.array((S,)) if x.fdp.ConsumeBool() else None, activation=act),
        "matmul_beta": lambda: ops.matmul(x.array((T, d)), x.array((d, S)), beta=x.real(1.0), out=x.array((T, S))),
        "matmul_bf16_out": lambda: ops.matmul(x.array((T, d)), x.array((d, S)), beta=x.real(0.0), activation=act,
                                              out=x.array((T, S), np.uint16), compute_dtype=cd),
        "to_bf16": lambda: ops.to_bf16(x.array((T, d)), out=x.array((T, d), np.uint16) if x.flag() else None),
        "bmm": lambda: ops.bmm(x.array((B, T, d)), x.array((B, d, S)), trans_a=x.flag(), trans_b=x.flag(),
                               activation=act, compute_dtype=cd),
        "attention_forward": lambda: ops.attention_forward(
            x.array((B, H, T, d)), x.array((B, H, S, d)), x.array((B, H, S, d)), key_padding_mask=x.mask((B, S)),
            causal=x.flag(), dropout_p=x.real(0.25), seed=x.integer(1), step=x.integer(2), site=x.integer(3),
            impl=x.fdp.PickValueInList([None, "flash", "materialized", "rows", "other"]), compute_dtype=cd),
        "attention_bf16_values": lambda: attention_both(
            ops, x.array((B, H, T, d)), *(x.bf16(x.array(s)) for s in ((B, H, T, d), (B, H, S, d), (B, H, S, d))),
            key_padding_mask=x.mask((B, S)), causal=x.flag(), dropout_p=x.real(0.1), seed=x.integer(1),
            impl=x.fdp.PickValueInList([None, "flash", "rows"]), compute_dtype=cd),
        "attention_backward": lambda: ops.attention_backward(
            x.array((B, H, T, d)), x.array((B, H, T, d)), x.array((B, H, S, d)), x.array((B, H, S, d)),
            x.array((B, H, T, d)), x.array((B, H, T)), key_padding_mask=x.mask((B, S)), causal=x.flag(),
            dropout_p=x.real(0.0), impl=x.fdp.PickValueInList([None, "flash", "materialized"]), compute_dtype=cd),
        "linear_forward": lambda: ops.linear_forward(x.array((B, T, d)), x.array((S, d)), x.array((S,)),
                                                     compute_dtype=cd),
        "linear_backward": lambda: ops.linear_backward(x.array((B, T, S)), x.array((B, T, d)), x.array((S, d)),
                                                       need_dx=x.flag(), compute_dtype=cd),
        "column_sum": lambda: ops.column_sum(x.array((T, d)), out=x.array((d,)), accumulate=x.flag()),
        "ffn_forward": lambda: ops.ffn_forward(x.array((T, d)), x.array((S, d)), x.array((S,)), x.array((d, S)),
                                               x.array((d,)), activation=act, compute_dtype=cd),
        "ffn_backward": lambda: ops.ffn_backward(x.array((T, d)), x.array((T, d)), x.array((T, S)),
                                                 x.array((S, d)), x.array((d, S)), activation=act, compute_dtype=cd),
        "relu": lambda: ops.relu_backward(x.array((T, d)), x.array((T, d))),
        "gelu": lambda: ops.gelu_forward(x.array((T, d)), out=x.array((T, d)) if x.fdp.ConsumeBool() else None),
        "gelu_backward": lambda: ops.gelu_backward(x.array((T, d)), x.array((T, d))),
        "layer_norm_forward": lambda: ops.layer_norm_forward(
            x.array((B, T, d)), x.array((d,)), x.array((d,)), eps=x.real(1e-5),
            residual=x.array((B, T, d)) if x.fdp.ConsumeBool() else None),
        "layer_norm_backward": lambda: ops.layer_norm_backward(
            x.array((B, T, d)), x.array((B, T, d)), x.array((d,)), x.array((B, T)), x.array((B, T)),
            dweight=x.array((d,)) if x.fdp.ConsumeBool() else None, dbias=x.array((d,)) if x.fdp.ConsumeBool() else None,
            accumulate=x.fdp.ConsumeBool()),
        "softmax_forward": lambda: ops.softmax_forward(x.array((B, T, d)), mask=x.mask((B, T, d))),
        "softmax_backward": lambda: ops.softmax_backward(x.array((B, T, d)), x.array((B, T, d))),
        "embedding_forward": lambda: ops.embedding_forward(x.ids((B, T), V), x.array((V, d)), x.array((T, d))),
        "embedding_backward": lambda: ops.embedding_backward(
            x.array((B, T, d)), x.ids((B, T), V), x.integer(V), out=x.array((V, d)) if x.fdp.ConsumeBool() else None,
            accumulate=x.fdp.ConsumeBool()),
        "dropout": lambda: ops.dropout_forward(x.array((B, T)), x.real(0.5), x.integer(0), x.integer(1), x.integer(2)),
        "dropout_mask": lambda: ops.dropout_mask((B, T), x.real(0.5), x.integer(0), x.integer(1), x.integer(2)),
        "cross_entropy": lambda: ops.cross_entropy(x.array((B, T, V)), x.ids((B, T), V),
                                                   ignore_index=x.integer(-100), label_smoothing=x.real(0.1)),
        "cross_entropy_in_place": lambda: _in_place_cross_entropy(ops, x, (B, T, V)),
        "adam_step": lambda: ops.adam_step(x.array((d,)), x.array((d,)), x.array((d,)), x.array((d,)),
                                           x.integer(1), lr=x.real(1e-3), beta1=x.real(0.9), eps=x.real(1e-8),
                                           weight_decay=x.real(0.0), decoupled=x.flag()),
        "sgd_step": lambda: ops.sgd_step(x.array((d,)), x.array((d,)), x.array((d,)), x.integer(1),
                                         lr=x.real(0.1), momentum=x.real(0.9), nesterov=x.flag()),
        "grad_norm": lambda: ops.grad_norm(x.array((d,))),
        "clip_grad_norm": lambda: ops.clip_grad_norm(x.array((d,)), x.real(1.0)),
        "dot": lambda: ops.dot(x.array((d,)), x.array((d,))),
    }


def _in_place_cross_entropy(ops, x, shape):
    logits = x.array(shape)
    return ops.cross_entropy(logits, x.ids(shape[:-1], shape[-1]), label_smoothing=x.real(0.1), out=logits)


def setup():
    import atheris

    import fastformer as ff
    from fastformer import ops

    names = sorted(calls(ops, Inputs(atheris.FuzzedDataProvider(b"\0" * 64))))
    return ff, ops, names


def _call(state, data, threads=None):
    """Draw the kernel, SIMD path, thread count and inputs from `data` and call it."""
    import atheris

    ff, ops, names = state
    fdp = atheris.FuzzedDataProvider(data)
    name = fdp.PickValueInList(names)
    ff.set_simd(fdp.PickValueInList(ff.simd_levels()))
    # bf16 products: the best path the CPU has (AMX or AVX512-BF16), or one below it
    ff._C._bf16_limit(fdp.PickValueInList(["amx", "avx512_bf16", "emulated"]))
    drawn = fdp.ConsumeIntInRange(1, 3)
    ff.set_num_threads(threads or drawn)
    return calls(ops, Inputs(fdp))[name]()


def _bits(result):
    """A result as bytes: arrays by their raw bits, floats by their IEEE bits."""
    if isinstance(result, tuple):
        return b"|".join(_bits(r) for r in result)
    if isinstance(result, np.ndarray):
        return result.tobytes() + str(result.shape).encode()
    if isinstance(result, float):
        return np.float64(result).tobytes()
    return repr(result).encode()


def test_one_input(data, state):
    result = _call(state, data)
    # The same inputs on one thread: bitwise the same (SPEC section 4).
    if _bits(_call(state, data, threads=1)) != _bits(result):
        raise AssertionError("a kernel gave other bits on one thread than on several")


if __name__ == "__main__":
    run(test_one_input, setup)
