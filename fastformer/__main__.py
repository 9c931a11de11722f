"""The `fastformer` command line."""
import argparse
import json
import sys


def _cmd_info(args):
    import fastformer

    print(json.dumps(fastformer.build_info(), indent=2))
    return 0


def _cmd_demo(args):
    from fastformer.demo import run_demo

    return run_demo(steps=args.steps, seed=args.seed)


def build_parser():
    parser = argparse.ArgumentParser(prog="fastformer", description="Train Transformers on CPUs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="print what the compiled core was built with")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("demo", help="train the NumPy reference Transformer for a few steps on a copy task")
    p.add_argument("--steps", type=int, default=200, help="training steps (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
