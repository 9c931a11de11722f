"""Benchmarks: compiled kernels against their NumPy twins, side by side."""
