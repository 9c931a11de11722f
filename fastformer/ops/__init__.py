"""Compiled kernels (float32), each with a NumPy twin of the same name and
signature in `fastformer.reference`."""
from fastformer._C import dot

__all__ = ["dot"]
