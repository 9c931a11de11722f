"""python -m fastformer.bench <family> [options]: run one benchmark family
(also `fastformer bench <family> ...`).

Each family is a module in this package exposing `add_arguments(parser)` and
`run(args) -> int`; list it in BENCHMARKS to make it a subcommand. `all` runs
every family in turn with its defaults."""
import argparse
import importlib
import json
import os
import sys
import tempfile

# subcommand -> (module, one-line help)
BENCHMARKS = {
    "gemm": ("fastformer.bench.gemm", "matmul/bmm against numpy.matmul, GFLOP/s and fraction of FMA peak"),
    "ops": ("fastformer.bench.ops", "row-wise, loss, embedding, dropout and optimizer kernels against their twins"),
    "step": ("fastformer.bench.step", "one training step: compiled model against the NumPy reference and PyTorch"),
    "generate": ("fastformer.bench.generate", "greedy decoding: KV-cached generate against NumPy and PyTorch loops"),
    "distributed": ("fastformer.bench.distributed", "data-parallel steps: 1 rank x 2 threads against 2 ranks x 1 thread"),
}
ALL = ("gemm", "ops", "step", "generate")  # `all`; distributed needs MPI and runs on its own


def _add_all_arguments(p):
    from fastformer.bench.configs import parse_configs

    p.add_argument("--json", metavar="PATH", help="write every family's results to PATH, one key per family")
    p.add_argument("--plot", metavar="PATH.png", help="draw the training-step speedups (needs matplotlib)")
    p.add_argument("--config", type=parse_configs, metavar="NAMES",
                   help="configurations for step and generate (default: each one's own)")


def build_parser(prog="python -m fastformer.bench"):
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Benchmarks: compiled kernels against NumPy, side by side.")
    sub = parser.add_subparsers(dest="family", metavar="FAMILY")
    for name, (module, help_text) in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(module=module)
    p = sub.add_parser("all", help="gemm, ops, step and generate in turn, each with its defaults")
    _add_all_arguments(p)
    p.set_defaults(module=None, run_all=True)
    return parser


def run_all(parser, args):
    """Every family with its defaults (plus --config for step and generate,
    --plot for step); --json gathers their JSON outputs under one key each.
    Returns the first non-zero status, else 0."""
    status, combined = 0, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ALL:
            argv = [name]
            if name in ("step", "generate") and args.config:
                argv += ["--config", ",".join(c.name for c in args.config)]
            if name == "step" and args.plot:
                argv += ["--plot", args.plot]
            print(f"\n=== {parser.prog} {' '.join(argv)} ===", flush=True)
            path = os.path.join(tmp, name + ".json")
            family_args = parser.parse_args(argv + (["--json", path] if args.json else []))
            status = status or importlib.import_module(BENCHMARKS[name][0]).run(family_args)
            if args.json and os.path.exists(path):
                with open(path) as f:
                    combined[name] = json.load(f)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(combined, f, indent=2, default=str)
            f.write("\n")
        print(f"wrote {args.json}")
    return status


def main(argv=None, prog="python -m fastformer.bench"):
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if getattr(args, "run_all", False):
        return run_all(parser, args)
    if not getattr(args, "module", None):
        parser.print_help()
        return 2
    return importlib.import_module(args.module).run(args)


if __name__ == "__main__":
    sys.exit(main())
