"""The PyTorch twin of ``fastformer.reference.Transformer`` for the tests.

It lives in the package (``fastformer.bench.torch_model``, also the PyTorch
side of the benchmarks); this module keeps the tests' import path. Importing
it needs torch.
"""
from fastformer.bench.torch_model import TorchTwin, greedy_decode, sinusoidal_positions, twin_of

__all__ = ["TorchTwin", "greedy_decode", "sinusoidal_positions", "twin_of"]
