"""Vector kernels against their float64 NumPy twins."""
import numpy as np
import pytest

import fastformer as ff
from fastformer import ops, reference

SIZES = [1, 2, 7, 8, 9, 31, 4095, 4096, 4097, 3 * 4096 + 5, 300_007]


@pytest.mark.parametrize("n", SIZES)
def test_dot_matches_float64(simd, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    expected = reference.dot(x.astype(np.float64), y.astype(np.float64))
    bound = 1e-6 * np.sqrt(n) * np.linalg.norm(x) * np.linalg.norm(y) + 1e-30
    assert abs(ops.dot(x, y) - expected) <= bound


def test_dot_empty():
    e = np.zeros(0, np.float32)
    assert ops.dot(e, e) == 0.0 == reference.dot(e, e)


def test_dot_bitwise_identical_across_threads(simd, threads):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(1_000_003).astype(np.float32)
    y = rng.standard_normal(1_000_003).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append(np.float32(ops.dot(x, y)).tobytes())
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize(
    "x, y, error, match",
    [
        ([1.0], np.ones(1, np.float32), TypeError, "x must be a numpy.ndarray"),
        (np.ones(3), np.ones(3, np.float32), TypeError, "x must have dtype float32"),
        (np.ones(3, np.float32), np.ones((3, 1), np.float32), ValueError, "y must be 1-D"),
        (np.ones(3, np.float32), np.ones(4, np.float32), ValueError, "x has shape"),
        (np.ones(6, np.float32)[::2], np.ones(3, np.float32), ValueError, "x must be C-contiguous"),
    ],
)
def test_dot_rejects_bad_input(x, y, error, match):
    with pytest.raises(error, match=match):
        ops.dot(x, y)
