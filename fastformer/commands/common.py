"""What the subcommands share: argument types and the user-facing error."""
import argparse

import fastformer


class CLIError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def nonnegative_int(text):
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def unit_float(text):
    """argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def model_class(use_reference):
    """The Transformer class to run: the compiled `fastformer.Transformer`
    (the default), or the NumPy reference when `use_reference`."""
    return fastformer.reference.Transformer if use_reference else fastformer.Transformer


def set_threads(threads):
    """Threads for the compiled kernels (the NumPy reference's BLAS follows
    OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set before the process starts)."""
    if threads is not None:
        fastformer.set_num_threads(threads)
