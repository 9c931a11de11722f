"""Activations: relu and exact (erf) gelu, forward and backward, and a
vectorised erf (NumPy has none, and SciPy is not a run-time dependency).

erf follows W. J. Cody, "Rational Chebyshev approximations for the error
function", Math. Comp. 23 (1969): one rational approximation of erf on
|x| <= 0.46875 and two of erfc on 0.46875 < |x| <= 4 and |x| > 4, accurate to
about one unit in the last place of float64. float32 input is evaluated in
float32. GELU uses erfc, so it keeps its relative precision for negative x.
"""
import math

import numpy as np

# erf(x) = x * R(x^2) on |x| <= 0.46875.
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
# erfc(y) = exp(-y^2) * R(y) on 0.46875 < y <= 4.
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
# erfc(y) = exp(-y^2) / y * (1/sqrt(pi) - R(1/y^2) / y^2) on y > 4.
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 5.6418958354775628695e-1
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _exp_neg_square(y):
    """exp(-y^2) for y >= 0, with y^2 split into an exact part and a small rest
    so that the rounding of y*y is not amplified by exp (Cody's trick)."""
    y_hi = np.trunc(y * 16.0) / 16.0
    return np.exp(-y_hi * y_hi) * np.exp(-(y - y_hi) * (y + y_hi))


def _erf_small(x):
    """erf(x) for |x| <= 0.46875."""
    z = x * x
    num = _A[4] * z
    den = z
    for a, b in zip(_A[:3], _B[:3]):
        num = (num + a) * z
        den = (den + b) * z
    return x * (num + _A[3]) / (den + _B[3])


def _erfc_mid(y):
    """erfc(y) for 0.46875 < y <= 4."""
    num = _C[8] * y
    den = y
    for c, d in zip(_C[:7], _D[:7]):
        num = (num + c) * y
        den = (den + d) * y
    return (num + _C[7]) / (den + _D[7]) * _exp_neg_square(y)


def _erfc_large(y):
    """erfc(y) for y > 4."""
    z = 1.0 / (y * y)
    num = _P[5] * z
    den = z
    for p, q in zip(_P[:4], _Q[:4]):
        num = (num + p) * z
        den = (den + q) * z
    r = z * (num + _P[4]) / (den + _Q[4])
    return (_INV_SQRT_PI - r) / y * _exp_neg_square(y)


def _as_float(x):
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _erfc_tail(y):
    """erfc(y) for y > 0.46875 (inf included: the last branch clamps y, where
    erfc has long underflowed to 0)."""
    out = np.empty_like(y)
    mid = y <= 4.0
    out[mid] = _erfc_mid(y[mid])
    out[~mid] = _erfc_large(np.minimum(y[~mid], 30.0))
    return out


def erf(x):
    """Error function, elementwise. x: any shape, float32 or float64 (other
    input is converted to float64); returns an array of x's float dtype."""
    x = _as_float(x)
    out = x.copy()  # keeps NaN, which fails both range tests below
    ax = np.abs(x)
    small = ax <= 0.46875
    tail = ax > 0.46875
    out[small] = _erf_small(x[small])
    # Off the small range erf = 1 - erfc(|x|) > 0.49: no cancellation.
    out[tail] = np.copysign(1.0 - _erfc_tail(ax[tail]), x[tail])
    return out


def erfc(x):
    """Complementary error function 1 - erf(x), elementwise, with full relative
    precision also where it is tiny (large positive x). Same dtypes as erf."""
    x = _as_float(x)
    out = x.copy()
    small = np.abs(x) <= 0.46875
    pos = x > 0.46875
    neg = x < -0.46875
    out[small] = 1.0 - _erf_small(x[small])
    out[pos] = _erfc_tail(x[pos])
    out[neg] = 2.0 - _erfc_tail(-x[neg])
    return out


def into_out(out, value):
    """`value`, or `out` with value copied into it (the `out=` of the compiled twins)."""
    if out is None:
        return value
    out[...] = value
    return out


def gradient_into(out, value, accumulate, name="out"):
    """A parameter gradient `value`: itself, copied into `out`, or with
    accumulate added to `out` (the compiled backward ops' convention)."""
    if out is None:
        if accumulate:
            raise ValueError(f"accumulate=True needs {name}= (the gradient that is added to)")
        return value
    if accumulate:
        out += value
    else:
        out[...] = value
    return out


def relu_forward(x, *, out=None):
    """y = max(x, 0), elementwise. x: any shape; out: like x (may be x) or None."""
    return into_out(out, np.maximum(x, 0))


def relu_backward(dy, x, *, out=None):
    """dx = dy where x > 0 else 0 (derivative 0 at 0, as PyTorch). dy, x: same
    shape; x may hold bf16 values (uint16, to_bf16)."""
    from fastformer.reference.gemm import from_bf16  # gemm imports this module
    return into_out(out, np.where(from_bf16(x) > 0, dy, 0))


def _normal_cdf(x):
    """Phi(x) = 0.5 (1 + erf(x / sqrt(2))), as 0.5 erfc(-x / sqrt(2)): 1 + erf
    would cancel for negative x (badly in float32)."""
    return 0.5 * erfc(x * -_INV_SQRT_2)


def gelu_forward(x, *, out=None):
    """y = 0.5 x (1 + erf(x / sqrt(2))) = x Phi(x), elementwise (the exact GELU)."""
    return into_out(out, x * _normal_cdf(x))


def gelu_backward(dy, x, *, out=None):
    """dx = dy * (Phi(x) + x phi(x)), Phi and phi the standard normal cdf and pdf."""
    cdf = _normal_cdf(x)
    pdf = np.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return into_out(out, dy * (cdf + x * pdf))


_FORWARD = {"relu": relu_forward, "gelu": gelu_forward}
_BACKWARD = {"relu": relu_backward, "gelu": gelu_backward}


def check_activation(activation):
    """Raise ValueError unless activation is "relu" or "gelu"."""
    if activation not in _FORWARD:
        raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")


def activation_forward(x, activation):
    """act(x) for activation "relu" or "gelu"."""
    check_activation(activation)
    return _FORWARD[activation](x)


def activation_backward(dy, x, activation):
    """dy * act'(x) for activation "relu" or "gelu"."""
    check_activation(activation)
    return _BACKWARD[activation](dy, x)
