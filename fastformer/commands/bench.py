"""`fastformer bench ...`: the benchmark registry of `python -m fastformer.bench`.

`fastformer.__main__.main` hands every argument after `bench` to `forward`;
the subparser here lists the command in `fastformer --help`."""
import argparse


def add_parser(subparsers):
    p = subparsers.add_parser("bench", add_help=False,
                              help="benchmarks: gemm, ops, ops_attention, step, generate, distributed, all "
                                   "(see `fastformer bench --help`)")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda args: forward(args.bench_args))
    return p


def forward(argv):
    """Run `fastformer bench <argv>`; returns the exit status."""
    from fastformer.bench.__main__ import main

    return main(argv, prog="fastformer bench")
