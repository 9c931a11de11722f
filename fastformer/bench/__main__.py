"""python -m fastformer.bench <family> [options]: run one benchmark family.

Each family is a module in this package exposing `add_arguments(parser)` and
`run(args) -> int`; list it in BENCHMARKS to make it a subcommand."""
import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
BENCHMARKS = {
    "gemm": ("fastformer.bench.gemm", "matmul/bmm against numpy.matmul, GFLOP/s and fraction of FMA peak"),
    "ops": ("fastformer.bench.ops", "row-wise, loss, embedding, dropout and optimizer kernels against their twins"),
}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m fastformer.bench",
                                     description="Benchmarks: compiled kernels against NumPy, side by side.")
    sub = parser.add_subparsers(dest="family", metavar="FAMILY")
    for name, (module, help_text) in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(module=module)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "module", None):
        parser.print_help()
        return 2
    return importlib.import_module(args.module).run(args)


if __name__ == "__main__":
    sys.exit(main())
