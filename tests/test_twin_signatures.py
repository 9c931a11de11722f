"""Every compiled op has a NumPy twin with its signature (the same arguments,
`out=` and keywords), so the two models and the tests read alike."""
import inspect
import re

import pytest

from fastformer import ops
from fastformer import reference as ref

NO_TWIN = {"fma_peak", "bf16_path", "PackedMatrix"}  # the machine's, not math


def signature(fn):
    """The parameter list: inspect's, or the first line of a compiled docstring."""
    try:
        return str(inspect.signature(fn)).replace(" ", "")
    except (TypeError, ValueError):
        return re.match(r"\s*\w+(\(.*?\))", fn.__doc__).group(1).replace(" ", "")


@pytest.mark.parametrize("name", sorted(set(ops.__all__) - NO_TWIN))
def test_twin_has_the_compiled_signature(name):
    assert hasattr(ref, name), f"fastformer.reference has no twin of ops.{name}"
    assert signature(getattr(ref, name)) == signature(getattr(ops, name))


def test_twin_out_is_written_and_returned():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5))
    ids = np.array([[0, 2, 1]])
    cases = [(ref.softmax_forward, (x,)), (ref.softmax_backward, (x, x)),
             (ref.dropout_forward, (x, 0.5, 1, 2, 3)), (ref.dropout_backward, (x, 0.5, 1, 2, 3)),
             (ref.embedding_forward, (ids, x, x))]
    for fn, args in cases:
        want = fn(*args)
        out = np.full(want.shape, np.nan)
        assert fn(*args, out=out) is out and np.array_equal(out, want), fn.__name__
    with pytest.raises(ValueError, match="impl"):
        ref.attention_forward(x[None, None], x[None, None], x[None, None], impl="fast")
