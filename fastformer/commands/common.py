"""What the subcommands share: argument types and the user-facing error."""
import argparse

import fastformer


class CLIError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""


def _argument_type(parse, accept, expected):
    """An argparse type: `parse(text)`, refused unless `accept(value)`."""
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return convert


positive_int = _argument_type(int, lambda v: v >= 1, "a positive integer")
nonnegative_int = _argument_type(int, lambda v: v >= 0, "a non-negative integer")
positive_float = _argument_type(float, lambda v: 0 < v < float("inf"), "a positive number")
unit_float = _argument_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


# --precision: the name on the command line -> the model's compute_dtype
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}


def add_precision_argument(group, default_help):
    """--precision fp32|bf16 (the model's compute_dtype; see `compute_dtype_of`)."""
    group.add_argument("--precision", choices=tuple(PRECISIONS), default=None,
                       help="bf16: matrix products on bf16-rounded inputs summed in fp32 (mixed precision; "
                            f"weights, gradients and optimizer state stay fp32); default {default_help}")


def compute_dtype_of(args, default="float32"):
    """The compute_dtype --precision asks for, or `default` when it is not given."""
    return default if args.precision is None else PRECISIONS[args.precision]


def model_class(use_reference):
    """The Transformer class to run: the compiled `fastformer.Transformer`
    (the default), or the NumPy reference when `use_reference`."""
    return fastformer.reference.Transformer if use_reference else fastformer.Transformer


def set_threads(threads):
    """Threads for the compiled kernels (the NumPy reference's BLAS follows
    OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set before the process starts)."""
    if threads is not None:
        fastformer.set_num_threads(threads)
