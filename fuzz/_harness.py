"""What every fuzz harness shares: the atheris entry point and the rule that
bad input may only raise the documented errors.

A harness is `python fuzz/fuzz_NAME.py [libFuzzer flags] [corpus dir]`, for
example `-max_total_time=600` (see fuzz/README.md). Any other exception, a
crash or a sanitizer report is a finding: atheris stops and writes the input
that caused it (`crash-*`) to replay with `python fuzz/fuzz_NAME.py crash-...`.
"""
import os
import sys

import atheris

# The errors the public API promises for bad input (SPEC section 4).
EXPECTED = (TypeError, ValueError, MemoryError)


def run(test_one_input, setup=None, expected=EXPECTED):
    """Instrument fastformer's Python code for coverage and fuzz
    `test_one_input(data: bytes[, state])`, `state` being what `setup()`
    returns; exceptions of the `expected` types count as correct refusals."""
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    _cap_memory()
    with atheris.instrument_imports(include=["fastformer"]):
        import fastformer  # noqa: F401
    state = setup() if setup is not None else None

    def one(data):
        try:
            test_one_input(data, state) if setup is not None else test_one_input(data)
        except expected:
            pass

    argv = list(sys.argv)
    for path in [a for a in argv[1:] if not a.startswith("-")]:
        _seed_corpus(path)
    atheris.instrument_all()  # the harness's own branches guide the search too
    atheris.Setup(argv, one)
    atheris.Fuzz()


# A legitimately large request (a table of 2**31 rows fits this machine) is no
# finding, but it must not take the fuzzer down: allocations past this fail
# with MemoryError instead (under ASan, .ci/sanitize's max_allocation_size_mb does it).
ADDRESS_SPACE_BYTES = 6 * 2 ** 30


def _cap_memory():
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        return  # ASan reserves terabytes of address space; it caps allocations itself
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))


def _seed_corpus(path, count=16):
    """Start an empty corpus folder with a few random inputs of a useful size
    (libFuzzer alone starts from one byte, which draws only zeros)."""
    if os.path.isfile(path):
        return  # a single input to replay
    os.makedirs(path, exist_ok=True)
    if os.listdir(path):
        return
    import numpy as np

    rng = np.random.default_rng(0)
    for i in range(count):
        with open(os.path.join(path, f"seed-{i:02d}"), "wb") as f:
            f.write(rng.integers(0, 256, int(rng.integers(64, 2048)), dtype=np.uint8).tobytes())


def small_int(fdp, lo, hi, wild=0.1):
    """An int in [lo, hi], or now and then any 64-bit value (the edges bugs live at)."""
    if fdp.ConsumeProbability() < wild:
        return fdp.PickValueInList([-1, 0, 2 ** 31, 2 ** 63 - 1, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 30])
    return fdp.ConsumeIntInRange(lo, hi)


def scalar(fdp):
    """A real number, including the non-finite and out-of-range ones."""
    return fdp.PickValueInList([0.0, 1.0, -1.0, 0.5, 1e-8, 1e39, -1e39, float("inf"), float("nan"),
                                10 ** 400, 2 ** 63, True, None, "1", fdp.ConsumeFloat()])
