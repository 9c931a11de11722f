"""bf16 products (matmul/bmm with compute_dtype="bfloat16", csrc/gemm/gemm_bf16.c)
against the float64 twin that rounds its inputs the same way, on every SIMD
path this CPU has (the `bf16_simd` fixture): AMX's tile kernel and
AVX512-BF16's vdpbf16ps kernel where the CPU has them, the emulated path (fp32
kernels on rounded panels) at every SIMD level, AVX-512's included."""
import numpy as np
import pytest

import fastformer as ff
from fastformer import ops
from fastformer import reference as ref

SHAPES = [(1, 1, 1), (45, 53, 77), (13, 70, 3), (64, 64, 1025), (130, 33, 512), (7, 200, 1)]


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def _os_grants_amx():
    """Linux's arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), asked
    independently of the library: 0 where this process may use AMX tiles."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(158, 0x1023, 18) == 0  # SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA


def _expected_bf16_path(simd):
    flags = _cpu_flags()
    if simd != "avx512":
        return "emulated"
    if {"amx_tile", "amx_bf16"} <= flags and _os_grants_amx() and ff._C._bf16_path_built("amx"):
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags and ff._C._bf16_path_built("avx512_bf16") else "emulated"


def _operands(rng, m, n, k, ta, tb, batch=()):
    a = rng.standard_normal(batch + ((k, m) if ta else (m, k)), dtype=np.float32)
    b = rng.standard_normal(batch + ((n, k) if tb else (k, n)), dtype=np.float32)
    return a, b


def _bound(a, b, ta, tb, alpha, beta, c, bias, k):
    """What fp32 sums of k exact products may be off by: k ulps of the sum of
    magnitudes, plus the epilogue's few roundings."""
    abs_prod = ref.matmul(np.abs(ref.round_bf16(a)).astype(np.float64), np.abs(ref.round_bf16(b)).astype(np.float64),
                          ta, tb)
    scale = abs(alpha) * abs_prod + (abs(beta) * np.abs(c) if c is not None else 0) + (
        np.abs(bias) if bias is not None else 0)
    return (k + 4) * 2.0 ** -23 * scale * 1.2 + 1e-30


def test_round_bf16_twin_is_round_to_nearest_even(torch):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(10000).astype(np.float32) * 10.0 ** rng.integers(-40, 38, 10000),
                        np.array([0.0, -0.0, np.inf, -np.inf, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 3.4e38,
                                  1e-40, -1e-45], np.float32)]).astype(np.float32)
    expected = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(ref.round_bf16(x), expected)
    assert np.isnan(ref.round_bf16(np.array([np.nan], np.float32)))[0]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_matmul_bf16_matches_its_twin(bf16_simd, m, n, k, ta, tb):
    rng = np.random.default_rng(m * 7919 + n * 31 + k + 2 * ta + tb)
    a, b = _operands(rng, m, n, k, ta, tb)
    got = ops.matmul(a, b, ta, tb, compute_dtype="bfloat16")
    want = ref.matmul(a.astype(np.float64), b.astype(np.float64), ta, tb, compute_dtype="bfloat16")
    assert np.all(np.abs(got - want) <= _bound(a, b, ta, tb, 1.0, 0.0, None, None, k))


@pytest.mark.parametrize("activation", [None, "relu", "gelu"])
def test_matmul_bf16_epilogue(bf16_simd, activation):
    rng = np.random.default_rng(3)
    m, n, k = 37, 45, 300
    a, b = _operands(rng, m, n, k, False, True)
    c, bias = rng.standard_normal((m, n), dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    got = ops.matmul(a, b, False, True, 0.5, 0.75, out=c.copy(), bias=bias, activation=activation,
                     compute_dtype="bfloat16")
    want = ref.matmul(a.astype(np.float64), b.astype(np.float64), False, True, 0.5, 0.75, out=c.astype(np.float64),
                      bias=bias.astype(np.float64), activation=activation, compute_dtype="bfloat16")
    # C and bias are not rounded: only the product's inputs are
    np.testing.assert_array_less(np.abs(got - want), _bound(a, b, False, True, 0.5, 0.75, c, bias, k) + 1e-6)


@pytest.mark.parametrize("beta,bias,activation", [(1.0, False, None), (1.0, True, "gelu"), (0.0, True, "relu")])
def test_matmul_bf16_accumulates_over_k_blocks(bf16_simd, beta, bias, activation):
    """C += A B (a gradient's beta=1) and the forward's bias + activation, with
    k = 4200 over several KC blocks (AMX: 1408 + 1408 + 1384, the last padded),
    and an edge row alone giving the whole product's bits."""
    rng = np.random.default_rng(12)
    m, n, k = 70, 45, 4200
    a, b = _operands(rng, m, n, k, True, False)
    c = rng.standard_normal((m, n), dtype=np.float32)
    bv = rng.standard_normal(n, dtype=np.float32) if bias else None
    got = ops.matmul(a, b, True, False, 1.0, beta, out=c.copy(), bias=bv, activation=activation,
                     compute_dtype="bfloat16")
    want = ref.matmul(a.astype(np.float64), b.astype(np.float64), True, False, 1.0, beta, out=c.astype(np.float64),
                      bias=None if bv is None else bv.astype(np.float64), activation=activation,
                      compute_dtype="bfloat16")
    np.testing.assert_array_less(np.abs(got - want), _bound(a, b, True, False, 1.0, beta, c, bv, k) + 1e-6)
    row = ops.matmul(np.ascontiguousarray(a[:, 69:70]), b, True, False, 1.0, beta, out=c[69:70].copy(), bias=bv,
                     activation=activation, compute_dtype="bfloat16")
    np.testing.assert_array_equal(row[0], got[69])


def test_bf16_products_survive_other_tile_users(bf16_simd, torch):
    """PyTorch's bf16 matmul (oneDNN, on AMX tiles where the CPU has them)
    between two of ours changes nothing: each product sets up its own tiles."""
    rng = np.random.default_rng(13)
    a, b = _operands(rng, 200, 96, 300, False, True)
    first = ops.matmul(a, b, False, True, compute_dtype="bfloat16")
    ta, tb = torch.from_numpy(a).to(torch.bfloat16), torch.from_numpy(b).to(torch.bfloat16)
    for _ in range(3):
        torch.matmul(ta, tb.T)
        np.testing.assert_array_equal(ops.matmul(a, b, False, True, compute_dtype="bfloat16"), first)


def test_matmul_bf16_is_not_fp32():
    rng = np.random.default_rng(4)
    a, b = _operands(rng, 64, 64, 256, False, False)
    fp32 = ref.matmul(a.astype(np.float64), b.astype(np.float64))
    err = np.abs(ops.matmul(a, b, compute_dtype="bfloat16") - fp32).max() / np.abs(fp32).max()
    assert 1e-4 < err < 2e-2  # bf16 inputs: ~3 significant digits, never fp32's 7


def test_bmm_bf16_matches_its_twin(bf16_simd):
    rng = np.random.default_rng(5)
    a, b = _operands(rng, 19, 24, 64, False, True, batch=(6,))
    got = ops.bmm(a, b, False, True, compute_dtype="bfloat16")
    want = ref.bmm(a.astype(np.float64), b.astype(np.float64), False, True, compute_dtype="bfloat16")
    for i in range(6):
        assert np.all(np.abs(got[i] - want[i]) <= _bound(a[i], b[i], False, True, 1.0, 0.0, None, None, 64))


@pytest.mark.parametrize("m,n,k,ta,tb", [(300, 257, 1100, False, True), (130, 520, 77, True, False)])
@pytest.mark.parametrize("stored", [False, True])  # operands stored as bf16 values (tests/test_bf16_storage.py)
def test_matmul_bf16_bits_do_not_depend_on_threads(bf16_simd, threads, m, n, k, ta, tb, stored):
    rng = np.random.default_rng(6)
    a, b = _operands(rng, m, n, k, ta, tb)
    if stored:
        a, b = ops.to_bf16(a), ops.to_bf16(b)
    results = []
    for t in (1, 2, 3):
        threads(t)
        results.append(ops.matmul(a, b, ta, tb, compute_dtype="bfloat16"))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_empty_and_k0_bf16():
    out = np.ones((3, 4), np.float32)
    ops.matmul(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), beta=2.0, out=out,
               compute_dtype="bfloat16")
    np.testing.assert_array_equal(out, 2.0)
    assert ops.matmul(np.zeros((0, 5), np.float32), np.zeros((5, 4), np.float32),
                      compute_dtype="bfloat16").shape == (0, 4)


def test_bf16_path_follows_the_cpu_and_the_simd_level(simd):
    expected = _expected_bf16_path(simd)
    assert ops.bf16_path() == expected
    assert ff.build_info()["bf16"] == expected


def test_bf16_peak_measures_every_path(bf16_simd):
    """fma_peak(compute_dtype="bfloat16") runs the leaf of the path products
    take (AMX tiles, vdpbf16ps, or the fp32 FMAs when emulated), on every
    thread count: the number itself is the benchmarks' business."""
    for threads in (1, 2):
        assert ops.fma_peak(seconds=0.01, threads=threads, compute_dtype="bfloat16") > 0
    with pytest.raises(ValueError, match="compute_dtype"):
        ops.fma_peak(seconds=0.01, compute_dtype="bf16")


@pytest.mark.parametrize("bad,error", [("bf16", ValueError), ("float64", ValueError), (None, TypeError),
                                       (np.float32, TypeError)])
def test_bad_compute_dtype(bad, error):
    a = np.ones((2, 2), np.float32)
    with pytest.raises(error, match="compute_dtype"):
        ops.matmul(a, a, compute_dtype=bad)
    with pytest.raises(error, match="compute_dtype"):
        ops.bmm(a[None], a[None], compute_dtype=bad)
    with pytest.raises((ValueError, TypeError), match="compute_dtype"):
        ref.matmul(a, a, compute_dtype=bad if isinstance(bad, str) else "x")


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_bf16_rows_and_columns_alone_give_the_same_bits(bf16_simd, ta, tb):
    """A full panel and an edge panel are packed by different code (vector
    and portable, or masked): every element must come out the same either way."""
    rng = np.random.default_rng(7)
    a, b = _operands(rng, 24, 64, 131, ta, tb)
    whole = ops.matmul(a, b, ta, tb, compute_dtype="bfloat16")
    for i in (0, 13, 23):
        row = a[:, i:i + 1] if ta else a[i:i + 1]
        got = ops.matmul(np.ascontiguousarray(row), b, ta, tb, compute_dtype="bfloat16")
        np.testing.assert_array_equal(got[0], whole[i])
    col = b[5:6] if tb else b[:, 5:6]
    np.testing.assert_array_equal(ops.matmul(a, np.ascontiguousarray(col), ta, tb, compute_dtype="bfloat16")[:, 0],
                                  whole[:, 5])


def test_bf16_non_finite_inputs_propagate(bf16_simd):
    a = np.ones((3, 40), np.float32)
    b = np.ones((40, 5), np.float32)
    a[0, 7], a[1, 8], a[2, 9] = np.nan, np.inf, -np.inf
    got = ops.matmul(a, b, compute_dtype="bfloat16")
    assert np.isnan(got[0]).all() and (got[1] == np.inf).all() and (got[2] == -np.inf).all()


def test_bf16_rounding_of_every_path_is_the_twins(bf16_simd):
    """op(a) @ I is op(a) rounded, exactly: ties, subnormals, signed zeros and
    magnitudes from 1e-38 to 1e38 round as ref.round_bf16 rounds them, at
    panel edges too (odd sizes)."""
    rng = np.random.default_rng(11)
    m, k = 37, 67
    a = (rng.standard_normal((m, k)) * 10.0 ** rng.integers(-38, 38, (m, k))).astype(np.float32)
    ties = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 2 ** -130, -0.0, 0.0, 1e-40], np.float32)
    a.flat[:ties.size] = ties
    eye = np.eye(k, dtype=np.float32)
    for ta in (False, True):
        got = ops.matmul(np.ascontiguousarray(a.T) if ta else a, eye, ta, False, compute_dtype="bfloat16")
        want = ref.round_bf16(a)
        if bf16_simd in ("avx512_bf16", "amx"):  # vdpbf16ps and tdpbf16ps flush subnormal inputs to zero
            want = np.where(np.abs(want) < np.finfo(np.float32).tiny, 0.0, want)
        np.testing.assert_array_equal(got, want)
