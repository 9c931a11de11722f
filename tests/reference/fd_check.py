"""Central finite differences for the float64 gradient checks."""
import numpy as np


def numeric_grad(f, x, idx, h=1e-6):
    """d f() / d x.flat[i] for i in idx by central differences.

    f: no-argument function returning a float that reads x; x: float64 array,
    perturbed in place (it must be writable; each entry is restored)."""
    flat = x.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous so its flat view writes through"
    g = np.empty(len(idx))
    for n, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + h
        up = f()
        flat[i] = old - h
        down = f()
        flat[i] = old
        g[n] = (up - down) / (2 * h)
    return g


def sample(rng, size, k):
    """Up to k distinct flat indices into an array of `size` entries."""
    return rng.choice(size, size=min(k, size), replace=False)


def assert_grad(f, x, analytic, rng=None, k=None, rtol=1e-6, name="x"):
    """Check `analytic` (like x) against central differences of f on k sampled
    entries of x (all entries when k is None). The error is relative to the
    largest analytic entry, so entries that are exactly 0 are checked too."""
    idx = np.arange(x.size) if k is None else sample(rng, x.size, k)
    num = numeric_grad(f, x, idx)
    ana = analytic.reshape(-1)[idx]
    scale = max(np.abs(analytic).max(), 1e-12)
    err = np.abs(num - ana).max() / scale
    assert err < rtol, f"{name}: relative gradient error {err:.2e} (scale {scale:.2e})"
