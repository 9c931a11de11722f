"""erf against math.erf; relu and gelu values (gradients: test_op_gradients.py)."""
import math

import numpy as np
import pytest

from conftest import require_torch
from fastformer import reference as R


def _points():
    """A dense grid over [-8, 8], the approximation boundaries, and many decades."""
    decades = np.geomspace(1e-300, 40.0, 20000)
    edges = np.array([0.46875, 4.0, 5.9, 6.0, 27.0])
    edges = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, 100)])
    x = np.concatenate([np.linspace(-8, 8, 160001), decades, edges])
    return np.concatenate([x, -x, [0.0]])


def test_erf_float64_full_precision():
    x = _points()
    want = np.array([math.erf(v) for v in x])
    got = R.erf(x)
    assert got.dtype == np.float64
    rel = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(np.float64).tiny)
    assert rel.max() <= 1e-15, f"max relative error {rel.max():.2e} at x={x[rel.argmax()]!r}"


def test_erfc_float64_full_precision():
    x = _points()
    x = x[x < 26]  # erfc underflows past 26.5
    want = np.array([math.erfc(v) for v in x])
    got = R.erfc(x)
    rel = np.abs(got - want) / want
    assert rel.max() <= 1e-14, f"max relative error {rel.max():.2e} at x={x[rel.argmax()]!r}"
    np.testing.assert_array_equal(R.erfc(np.array([np.inf, -np.inf, 30.0])), [0, 2, 0])


def test_erf_float32():
    x = _points().astype(np.float32)
    x = x[np.abs(x) > 1e-30]  # float32 subnormals lose relative precision by design
    want = np.array([math.erf(float(v)) for v in x])
    got = R.erf(x)
    assert got.dtype == np.float32
    rel = np.abs(got.astype(np.float64) - want) / np.abs(want)
    assert rel.max() <= 5e-7  # a few float32 ulps


def test_erf_special_values():
    got = R.erf(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e308, -1e308]))
    assert got[0] == 0 and not np.signbit(got[0])
    assert got[1] == 0 and np.signbit(got[1])
    np.testing.assert_array_equal(got[[2, 3, 5, 6]], [1, -1, 1, -1])
    assert np.isnan(got[4])
    assert R.erf(0.5).shape == ()
    assert R.erf([1, 2]).dtype == np.float64  # integers are computed in float64


def test_relu_gelu_values():
    x = np.linspace(-5, 5, 101)
    np.testing.assert_array_equal(R.relu_forward(x), np.maximum(x, 0))
    # 0.5 x erfc(-x / sqrt(2)): 1 + erf(x / sqrt(2)) itself cancels for negative x.
    want = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(R.gelu_forward(x), want, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(R.relu_backward(np.ones(3), np.array([-1.0, 0.0, 1.0])),
                                  [0, 0, 1])


@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-10, 1e-15), (np.float32, 1e-4, 1e-6)])
def test_gelu_matches_torch(dtype, rtol, atol):
    """atol for float32: torch computes 1 + erf(x / sqrt(2)) in float32, which
    loses relative precision in the negative tail (ours goes through erfc)."""
    torch = require_torch()
    x = np.random.default_rng(0).standard_normal(1000).astype(dtype) * 4
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    y = torch.nn.functional.gelu(t)
    y.backward(torch.ones_like(y))
    np.testing.assert_allclose(R.gelu_forward(x), y.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(R.gelu_backward(np.ones_like(x), x), t.grad.numpy(),
                               rtol=rtol, atol=atol)
