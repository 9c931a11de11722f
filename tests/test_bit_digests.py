"""The compiled kernels' bits on fixed inputs, per SIMD path, against the
digests recorded before the kernel redesign (tests/bit_digests.py). A change
that moves bits on purpose (a new exp, say) re-records them with
`python tests/bit_digests.py --record` on a CPU with every path, and says
which kernels changed and why in its commit."""
import pytest

import fastformer as ff

from bit_digests import CASES, digest, load

RECORDED = load()


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("simd", ff.simd_levels())
def test_bits_as_recorded(simd, case):
    assert simd in RECORDED, f"no digests recorded for {simd}: record them on a CPU that has it"
    assert digest(case, simd) == RECORDED[simd][case], f"{case} on {simd} gives other bits than recorded"
