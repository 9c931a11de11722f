"""Counter-based dropout: Philox4x32-10 known answers, the mask layout of the
contract, keep rates, scaling, and forward/backward agreement."""
import numpy as np
import pytest

from fastformer import reference as R
from fastformer.reference.dropout import dropout_bits

M = 0xFFFFFFFF


@pytest.mark.parametrize("counter,key,want", [
    # Random123's known-answer vectors for philox4x32_R(10, ...).
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((M, M, M, M), (M, M), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_known_answers(counter, key, want):
    got = R.philox4x32(*counter, *key)
    assert [int(w) for w in got] == list(want)
    assert all(w.dtype == np.uint32 for w in got)


def test_philox_vectorised_matches_scalar():
    rng = np.random.default_rng(0)
    c = rng.integers(0, 2**32, size=(4, 37), dtype=np.uint64)
    words = R.philox4x32(*c, 0x12345678, 0x9ABCDEF0)
    for j in (0, 5, 36):
        one = R.philox4x32(*(int(c[w, j]) for w in range(4)), 0x12345678, 0x9ABCDEF0)
        assert [int(w[j]) for w in words] == [int(w) for w in one]


def test_mask_layout_is_the_contract():
    """Element i uses word i & 3 of counter (i >> 2, i >> 34, site, step), key from seed."""
    seed, step, site = (5 << 32) | 77, 9, 0x01000204
    shape = (3, 5, 7)
    bits = dropout_bits(shape, seed, step, site).reshape(-1)
    for i in (0, 1, 2, 3, 4, 50, 104):
        words = R.philox4x32(i >> 2, i >> 34, site, step, seed & M, seed >> 32)
        assert bits[i] == words[i & 3]
    p = 0.3
    threshold = np.uint32(int(p * 2**32))
    np.testing.assert_array_equal(R.dropout_mask(shape, p, seed, step, site).reshape(-1),
                                  bits >= threshold)
    # The mask depends only on the flat index, not on the shape.
    np.testing.assert_array_equal(R.dropout_mask((105,), p, seed, step, site).reshape(shape),
                                  R.dropout_mask(shape, p, seed, step, site))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate(p):
    n = 1_000_003
    keep = R.dropout_mask((n,), p, seed=123, step=4, site=2)
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(keep.mean() - (1 - p)) < 5 * sigma
    # Consecutive elements (same or neighbouring counters) are not correlated.
    k = keep.astype(np.float64)
    corr = np.corrcoef(k[:-1], k[1:])[0, 1]
    assert abs(corr) < 5 / np.sqrt(n)


def test_edge_rates():
    x = np.ones((4, 9), dtype=np.float32)
    assert R.dropout_mask(x.shape, 0.0, 1, 2, 3).all()
    assert not R.dropout_mask(x.shape, 1.0, 1, 2, 3).any()
    np.testing.assert_array_equal(R.dropout_forward(x, 0.0, 1, 2, 3), x)
    np.testing.assert_array_equal(R.dropout_forward(x, 1.0, 1, 2, 3), np.zeros_like(x))
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p must be"):
            R.dropout_mask(x.shape, p, 1, 2, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_backward_share_the_mask(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 50)).astype(dtype)
    p, args = 0.3, (42, 7, 3)
    keep = R.dropout_mask(x.shape, p, *args)
    y = R.dropout_forward(x, p, *args)
    scale = dtype(1.0 / (1.0 - p))
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, np.where(keep, x * scale, 0))  # one multiply, bitwise
    dy = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(R.dropout_backward(dy, p, *args), np.where(keep, dy * scale, 0))


def test_masks_differ_by_seed_step_site():
    base = R.dropout_mask((1000,), 0.5, 1, 2, 3)
    for args in [(2, 2, 3), (1, 3, 3), (1, 2, 4), (1 + (1 << 32), 2, 3)]:
        assert (R.dropout_mask((1000,), 0.5, *args) != base).mean() > 0.3


def test_dropout_site_numbering():
    assert R.dropout_site(0, 0, 1) == 1
    assert R.dropout_site(1, 0, 0) == 1 << 24
    assert R.dropout_site(2, 3, 4) == 0x02000304
    sites = {R.dropout_site(part, layer, slot)
             for part in range(3) for layer in range(4) for slot in range(5)}
    assert len(sites) == 60
    for bad in [(3, 0, 0), (1, -1, 0), (1, 1 << 16, 0), (1, 0, 256)]:
        with pytest.raises(ValueError):
            R.dropout_site(*bad)
