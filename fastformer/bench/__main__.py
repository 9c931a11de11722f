"""python -m fastformer.bench <family> [options]: run one benchmark family
(also `fastformer bench <family> ...`).

Every family is a module of this package listed in FAMILIES, with HELP (one
line), add_arguments(parser) and run(args) -> exit status, built on
`fastformer.bench.harness` (shared arguments, header, timer, memory probe,
table and JSON). `all` runs the families of ALL in turn with their defaults."""
import argparse
import json
import os
import sys
import tempfile

from fastformer.bench import distributed, gemm, generate, ops, ops_attention, step, uncapped
from fastformer.bench.configs import parse_configs

# subcommand -> family module
FAMILIES = {
    "gemm": gemm,
    "ops": ops,
    "ops_attention": ops_attention,
    "step": step,
    "generate": generate,
    "distributed": distributed,
}
# `all`: ops already holds ops_attention's kernel cases; distributed needs MPI and runs on its own
ALL = ("gemm", "ops", "step", "generate")


def _add_all_arguments(p):
    p.add_argument("--json", metavar="PATH", help="write every family's results to PATH, one key per family")
    p.add_argument("--plot", metavar="PATH.png", help="draw the training-step speedups (needs matplotlib)")
    p.add_argument("--config", type=parse_configs, metavar="NAMES",
                   help="configurations for step and generate (default: each one's own)")


def build_parser(prog="python -m fastformer.bench"):
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Benchmarks: compiled kernels against NumPy, side by side.")
    sub = parser.add_subparsers(dest="family", metavar="FAMILY")
    for name, family in FAMILIES.items():
        p = sub.add_parser(name, help=family.HELP, description=family.HELP)
        family.add_arguments(p)
        p.set_defaults(run=family.run)
    p = sub.add_parser("all", help=f"{', '.join(ALL)} in turn, each with its defaults")
    _add_all_arguments(p)
    p.set_defaults(run=None, run_all=True)
    return parser


def run_all(parser, args):
    """Every family of ALL with its defaults (plus --config for step and
    generate, --plot for step); --json gathers their JSON outputs under one
    key each. Returns the first non-zero status, else 0."""
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
            status = status or family_args.run(family_args)
            if args.json and os.path.exists(path):
                with open(path) as f:
                    combined[name] = json.load(f)
    if args.json:
        from fastformer.bench.harness import write_json

        write_json(args.json, combined)
        print(f"wrote {args.json}")
    return status


def main(argv=None, prog="python -m fastformer.bench"):
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    # distributed: no NumPy side, and its ranks are launched by mpiexec with their own environment
    if args.family not in (None, "distributed") and uncapped.needs_rerun():
        return uncapped.rerun(sys.argv[1:] if argv is None else list(argv))
    if getattr(args, "run_all", False):
        return run_all(parser, args)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
