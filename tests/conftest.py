"""Shared test fixtures: every SIMD path, thread counts, and torch on demand."""
import os

import pytest

import fastformer as ff


def require_torch():
    """Import torch for a parity test. Skips when torch is missing, unless
    FASTFORMER_REQUIRE_TORCH=1 (set by CI), where a missing torch fails."""
    if os.environ.get("FASTFORMER_REQUIRE_TORCH") == "1":
        import torch  # noqa: F401  (an ImportError here fails the test, as it must in CI)

        return torch
    return pytest.importorskip("torch")


@pytest.fixture
def torch():
    return require_torch()


@pytest.fixture(params=ff.simd_levels())
def simd(request):
    """Run the test once per instruction set this CPU supports, restoring the default after."""
    before = ff.get_simd()
    ff.set_simd(request.param)
    try:
        yield request.param
    finally:
        ff.set_simd(before)


@pytest.fixture
def threads():
    """Call with n to set the thread count; the original count is restored after the test."""
    before = ff.get_num_threads()
    yield ff.set_num_threads
    ff.set_num_threads(before)
