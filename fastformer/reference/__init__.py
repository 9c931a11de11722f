"""Pure-NumPy twins of every compiled kernel and of the whole model, in
float32 and float64: the oracle of the tests and the NumPy side of every
speed comparison."""
from fastformer.reference.vector import dot

__all__ = ["dot"]
