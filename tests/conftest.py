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


def _bf16_paths():
    """(SIMD level, best bf16 path allowed) for every bf16 path this CPU can
    run: each level at its best, and at AVX-512 every path below the CPU's
    best too (those of CPUs without AMX, or without AVX512-BF16)."""
    paths = [(level, "amx") for level in ff.simd_levels()]
    if "avx512" in ff.simd_levels():
        below = {"amx": ["avx512_bf16", "emulated"], "avx512_bf16": ["emulated"], "emulated": []}
        paths += [("avx512", limit) for limit in below[ff.build_info()["bf16"]]]
    return paths


@pytest.fixture(params=_bf16_paths(), ids=lambda p: p[0] if p[1] == "amx" else f"{p[0]}-{p[1]}")
def bf16_simd(request):
    """Run the test once per bf16 path (see _bf16_paths); yields ops.bf16_path()."""
    from fastformer import _C, ops

    level, limit = request.param
    before = ff.get_simd()
    ff.set_simd(level)
    _C._bf16_limit(limit)
    try:
        yield ops.bf16_path()
    finally:
        _C._bf16_limit("amx")
        ff.set_simd(before)


@pytest.fixture
def internal_checks():
    """Call with True/False to turn on/off the argument checks of the model's
    internal calls (FASTFORMER_CHECK_INTERNAL); the setting is restored after."""
    from fastformer import _C

    before = _C._set_internal_checks(False)
    _C._set_internal_checks(before)
    yield _C._set_internal_checks
    _C._set_internal_checks(before)


@pytest.fixture
def threads():
    """Call with n to set the thread count; the original count is restored after the test."""
    before = ff.get_num_threads()
    yield ff.set_num_threads
    ff.set_num_threads(before)


def require_mpi():
    """The mpiexec to run MPI tests with. Skips when mpi4py or mpiexec is missing,
    unless FASTFORMER_REQUIRE_MPI=1 (set by CI), where they fail."""
    import importlib.util

    from fastformer.commands.ranks import find_mpiexec

    mpiexec = find_mpiexec()
    if importlib.util.find_spec("mpi4py") is None or mpiexec is None:
        if os.environ.get("FASTFORMER_REQUIRE_MPI") == "1":
            pytest.fail('FASTFORMER_REQUIRE_MPI=1 but mpi4py or mpiexec is missing: pip install ".[mpi]"')
        pytest.skip('needs mpi4py and mpiexec (pip install ".[mpi]")')
    return mpiexec


@pytest.fixture(scope="session")
def mpiexec():
    return require_mpi()
