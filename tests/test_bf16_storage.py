"""Values stored in bf16 (np.uint16, the top halves of float32s): ops.to_bf16
against its twin; bf16 products (matmul/bmm with compute_dtype="bfloat16")
reading stored operands give the bits of the same values in float32, and a
stored out gets the float32 result rounded, on every bf16 path, batch,
transpose and thread count (with test_gemm_bf16.py's thread test); relu_backward from stored x; a bf16 model keeps
its FFN hidden activation stored so."""
import numpy as np
import pytest

import fastformer as ff
from fastformer import ops
from fastformer import reference as ref

SHAPES = [(1, 1, 1), (45, 53, 77), (13, 70, 3), (64, 64, 1025), (130, 33, 512), (7, 200, 1)]


def _special_values(rng):
    """Normal values over the whole float32 range, and the cases rounding must get right."""
    x = rng.standard_normal(5000).astype(np.float32) * 10.0 ** rng.integers(-44, 38, 5000)
    edge = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 3.4e38, -3.4e38,
            1e-40, -1e-45, 1.0 + 2 ** -9, 2 ** -126]
    return np.concatenate([x, np.array(edge, np.float32)]).astype(np.float32)


def test_to_bf16_matches_its_twin_and_torch(torch):
    x = _special_values(np.random.default_rng(0))
    got = ops.to_bf16(x)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, ref.to_bf16(x))
    finite = ~np.isnan(x)
    want = torch.from_numpy(x[finite]).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(got[finite], want)
    nan = ref.from_bf16(got[~finite])
    assert np.isnan(nan).all() and ((got[~finite] & 0x40) != 0).all()  # quiet
    np.testing.assert_array_equal(ref.from_bf16(got)[finite], ref.round_bf16(x)[finite])


@pytest.mark.parametrize("shape", [(0,), (1,), (17,), (3, 1000), (2, 3, 70001)])
def test_to_bf16_out_and_threads(threads, shape):
    x = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
    results = []
    for t in (1, 2, 3):
        threads(t)
        out = np.full(shape, 7, np.uint16)
        assert ops.to_bf16(x, out=out) is out
        results.append(out)
    for r in results:
        np.testing.assert_array_equal(r, ref.to_bf16(x))


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_stored_operands_give_the_bits_of_their_values(bf16_simd, m, n, k, ta, tb):
    rng = np.random.default_rng(m * 7919 + n * 31 + k + 2 * ta + tb)
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    a16, b16 = ops.to_bf16(a), ops.to_bf16(b)
    bias = rng.standard_normal(n, dtype=np.float32)
    c = rng.standard_normal((m, n), dtype=np.float32)
    want = ops.matmul(a, b, ta, tb, 0.5, 1.0, c.copy(), bias, "relu", compute_dtype="bfloat16")
    for x, y in [(a16, b), (a, b16), (a16, b16)]:
        got = ops.matmul(x, y, ta, tb, 0.5, 1.0, c.copy(), bias, "relu", compute_dtype="bfloat16")
        np.testing.assert_array_equal(got, want)
    twin = ref.matmul(a16, b16, ta, tb, 0.5, 1.0, c.astype(np.float64), bias, "relu", compute_dtype="bfloat16")
    np.testing.assert_allclose(want, twin, rtol=1e-4, atol=1e-4 * np.sqrt(k))


@pytest.mark.parametrize("m,n,k", SHAPES + [(64, 64, 0), (33, 40, 2100)])  # no k block, several k blocks
@pytest.mark.parametrize("ta,tb", [(False, True), (True, False)])
@pytest.mark.parametrize("beta", [0.0, 1.0, -0.5])
def test_stored_out_gets_the_rounded_result(bf16_simd, m, n, k, ta, tb, beta):
    rng = np.random.default_rng(m * 31 + n + k + int(4 * beta))
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = ops.to_bf16(rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32))
    bias = rng.standard_normal(n, dtype=np.float32)
    c = ops.to_bf16(rng.standard_normal((m, n), dtype=np.float32))
    want = ops.matmul(a, b, ta, tb, 0.75, beta, ref.from_bf16(c), bias, "gelu", compute_dtype="bfloat16")
    out = c.copy()
    assert ops.matmul(a, b, ta, tb, 0.75, beta, out, bias, "gelu", compute_dtype="bfloat16") is out
    np.testing.assert_array_equal(out, ops.to_bf16(want))
    twin = ref.matmul(a, b, ta, tb, 0.75, beta, c.copy(), bias, "gelu", compute_dtype="bfloat16")
    assert twin.dtype == np.uint16
    np.testing.assert_allclose(ref.from_bf16(out), ref.from_bf16(twin), rtol=2 ** -7, atol=1e-3 * np.sqrt(k + 1))


@pytest.mark.parametrize("activation", [None, "relu", "gelu"])
def test_stored_out_rounds_subnormal_results(bf16_simd, activation):
    """Results below float32's smallest normal, which vcvtneps2bf16 (the AMX
    and AVX512-BF16 epilogue's rounding) flushes to zero, round as
    ops.to_bf16 does: whole 32-wide tiles and the edge columns."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((37, 64), dtype=np.float32)
    b = ops.to_bf16(rng.standard_normal((64, 40), dtype=np.float32))
    alpha = 2.0 ** -131
    want = ops.matmul(a, b, alpha=alpha, activation=activation, compute_dtype="bfloat16")
    rounded = ops.to_bf16(want)
    assert ((rounded & 0x7f80 == 0) & (rounded & 0x7f != 0)).sum() > 300  # subnormal bf16 values
    out = np.empty(want.shape, np.uint16)
    ops.matmul(a, b, alpha=alpha, out=out, activation=activation, compute_dtype="bfloat16")
    np.testing.assert_array_equal(out, rounded)


def test_stored_out_of_bmm(bf16_simd, threads):
    rng = np.random.default_rng(8)
    a = rng.standard_normal((5, 70, 96), dtype=np.float32)
    b = rng.standard_normal((5, 96, 41), dtype=np.float32)
    want = ops.to_bf16(ops.bmm(a, b, compute_dtype="bfloat16"))
    for t in (1, 2, 3):
        threads(t)
        out = np.zeros((5, 70, 41), np.uint16)
        np.testing.assert_array_equal(ops.bmm(a, b, out=out, compute_dtype="bfloat16"), want)


def test_stored_operands_in_bmm_and_views(bf16_simd):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((6, 19, 64), dtype=np.float32)
    b = rng.standard_normal((6, 24, 64), dtype=np.float32)
    want = ops.bmm(a, b, False, True, compute_dtype="bfloat16")
    np.testing.assert_array_equal(ops.bmm(ops.to_bf16(a), ops.to_bf16(b), False, True, compute_dtype="bfloat16"),
                                  want)
    big = ops.to_bf16(rng.standard_normal((40, 64), dtype=np.float32))  # a contiguous slice of rows
    np.testing.assert_array_equal(ops.matmul(big[7:26], b[0], False, True, compute_dtype="bfloat16"),
                                  ops.matmul(ref.from_bf16(big[7:26]), b[0], False, True, compute_dtype="bfloat16"))


def test_relu_backward_from_stored_x():
    rng = np.random.default_rng(2)
    x = _special_values(rng)
    x = x[~np.isnan(x)]
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    x16 = ops.to_bf16(x)
    got = ops.relu_backward(dy, x16)
    np.testing.assert_array_equal(got, ref.relu_backward(dy, x16))
    np.testing.assert_array_equal(got, ops.relu_backward(dy, ref.from_bf16(x16)))
    nan = np.array([0x7FC0, 0xFFC1, 0x7F81], np.uint16)  # NaN is not > 0
    np.testing.assert_array_equal(ops.relu_backward(np.ones(3, np.float32), nan), 0.0)


def test_bad_stored_operands():
    a = ops.to_bf16(np.ones((3, 4), np.float32))
    b = np.ones((4, 5), np.float32)
    with pytest.raises(TypeError, match="a holds bf16 values.*compute_dtype='bfloat16'"):
        ops.matmul(a, b)
    with pytest.raises(ValueError, match="a must be C-contiguous"):
        ops.matmul(ops.to_bf16(np.ones((4, 3), np.float32)).T, b, compute_dtype="bfloat16")
    with pytest.raises(ValueError, match="b must be 2-D"):
        ops.matmul(a, ops.to_bf16(np.ones(4, np.float32)), compute_dtype="bfloat16")
    with pytest.raises(TypeError, match="x must have dtype float32"):
        ops.to_bf16(a)
    with pytest.raises(TypeError, match="out must be a numpy.ndarray of uint16"):
        ops.to_bf16(b, out=np.empty((4, 5), np.float32))
    with pytest.raises(ValueError, match="out has shape"):
        ops.to_bf16(b, out=np.empty((5, 4), np.uint16))
    with pytest.raises(TypeError, match="x must have dtype float32"):
        ops.gelu_backward(b, ops.to_bf16(b))  # only relu's backward reads stored x
    with pytest.raises(TypeError, match="bf16 values"):
        ref.matmul(a, b)
    with pytest.raises(TypeError, match="out must have dtype float32"):
        ops.matmul(b.T.copy(), b, out=np.empty((5, 5), np.uint16))  # a bf16 out needs bf16 products
    with pytest.raises(ValueError, match="out must have shape"):
        ops.matmul(a, b, out=np.empty((5, 3), np.uint16), compute_dtype="bfloat16")
    with pytest.raises(ValueError, match="out must not overlap a"):
        square = ops.to_bf16(np.eye(4, dtype=np.float32))
        ops.matmul(square, b[:, :4].copy(), out=square, compute_dtype="bfloat16")


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_bf16_model_stores_what_only_bf16_products_read_in_bf16(activation):
    """The FFN's hidden activation and attention's Q, K, V (the flash
    kernels read them as stored); what float32 steps read stays float32."""
    kwargs = dict(src_vocab_size=30, tgt_vocab_size=31, d_model=32, nhead=4, num_encoder_layers=1,
                  num_decoder_layers=1, dim_feedforward=48, dropout=0.0, activation=activation, seed=1)
    models = {dt: ff.Transformer(**kwargs, compute_dtype=dt) for dt in ("float32", "bfloat16")}
    rng = np.random.default_rng(3)
    src, tgt = rng.integers(0, 30, (2, 7)), rng.integers(0, 31, (2, 5))
    plans = {}
    for dt, m in models.items():
        m.forward_backward(src, tgt, tgt)
        plans[dt] = m._plan(2, 7, 5)
    assert plans["float32"].enc[1].hact.dtype == np.float32 and plans["float32"].enc[0].qkv.dtype == np.float32
    for p in (plans["bfloat16"].enc[1], plans["bfloat16"].dec[2]):
        assert p.hact.dtype == np.uint16 and p.hact.shape[1] == 48
        assert hasattr(p, "hpre") == (activation == "gelu")  # gelu's derivative reads the fp32 pre-activation
    enc_self, dec_self, cross = plans["bfloat16"].enc[0], plans["bfloat16"].dec[0], plans["bfloat16"].dec[1]
    assert enc_self.qkv.dtype == dec_self.qkv.dtype == cross.q.dtype == cross.kv.dtype == np.uint16
    assert cross.kv.shape == (14, 64)
    for p in (enc_self, dec_self, cross):  # the output projection's input, and the backward's D = rowsum(dO * O)
        assert p.ctx.dtype == p.out.dtype == p.body.dtype == np.float32
    assert models["bfloat16"]._workspace.nbytes < models["float32"]._workspace.nbytes


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_bf16_storage_gives_the_bits_of_float32_storage(bf16_simd, monkeypatch, norm_first, activation):
    """A bf16 model that keeps in bf16 what only its bf16 products read (Q, K,
    V, the FFN's hidden activation, pre-norm's LN(x)) trains to the bits of
    one that keeps every activation in float32; a pre-norm record makes its
    body in out (the backward reads LN(x), not the body)."""
    from fastformer.bench.configs import Config, synthetic_batch
    from fastformer.model import sublayers

    config = Config("x", 32, 4, 2, 2, 48, 3, 13, 11, 29)
    batch = synthetic_batch(config)

    def train():
        m = ff.Transformer(**config.model_kwargs(0.1), activation=activation, norm_first=norm_first,
                           compute_dtype="bfloat16")
        for _ in range(2):
            m.zero_grad()
            m.forward_backward(batch.src, batch.tgt_in, batch.tgt_out, batch.src_key_padding_mask,
                               batch.tgt_key_padding_mask)
            for p in m.parameters():
                p.data -= 1e-2 * p.grad
        return m

    stored = train()
    record = stored._plan(*batch.src.shape, batch.tgt_in.shape[1]).dec[2]
    assert record.hact.dtype == np.uint16
    if norm_first:
        assert record.normed.dtype == np.uint16 and record.body is record.out
    monkeypatch.setattr(sublayers, "stored_dtype", lambda cfg: np.float32)
    wide = train()
    assert wide._plan(*batch.src.shape, batch.tgt_in.shape[1]).dec[2].hact.dtype == np.float32
    for (name, p), q in zip(stored.named_parameters(), wide.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_workspace_carves_bf16_views_apart_and_aligned():
    from fastformer.model.workspace import Workspace

    ws = Workspace()
    specs = [("a", (3, 5)), ("h", (7, 3), np.uint16), ("b", (9,)), ("odd", (1,), np.uint16), ("c", (2, 2))]
    views = ws.plan("k", lambda: specs, lambda v: v)
    for name, shape, *dtype in specs:
        v = views[name]
        assert v.shape == shape and v.dtype == (dtype[0] if dtype else np.float32) and v.flags.c_contiguous
        assert v.ctypes.data % 64 == 0
        v[...] = 0
    for name, v in views.items():  # each view holds its own bytes
        v[...] = 1
        assert all(not np.any(w) for other, w in views.items() if other != name)
        v[...] = 0
