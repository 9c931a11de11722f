"""The `fastformer` command line: one subparser per command."""
import argparse
import json
import sys


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): `fastformer train: error: ...`."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _cmd_info(args):
    import fastformer

    print(json.dumps(fastformer.build_info(), indent=2))
    return 0


def _cmd_demo(args):
    from fastformer.demo import run_demo

    return run_demo(steps=args.steps, seed=args.seed)


def build_parser():
    from fastformer.commands import average, bench, export, generate, make_data, train, translate

    parser = _Parser(prog="fastformer", description="Train Transformers on CPUs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="print what the compiled core was built with")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("demo", help="train the NumPy reference Transformer for a few steps on a copy task")
    p.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_cmd_demo)
    train.add_parser(sub)
    translate.add_parser(sub)
    generate.add_parser(sub)
    average.add_parser(sub)
    export.add_parser(sub)
    bench.add_parser(sub)
    make_data.add_parser(sub)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (2 for bad input)."""
    from fastformer.commands.common import CLIError
    from fastformer.trainer import NonFiniteLossError

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        # Straight to the benchmark registry: argparse's REMAINDER would not
        # pass a leading option such as `fastformer bench --help` through.
        from fastformer.commands.bench import forward

        return forward(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = f"fastformer {args.command}"
    args.argv = argv  # for `train --nproc`, which runs the same command as MPI ranks
    # fail(): prints the message; under MPI with several ranks it also ends the whole job.
    from fastformer.commands.ranks import fail

    try:
        return args.func(args)
    except NonFiniteLossError as exc:
        return fail(f"{prog}: {exc}", 1)
    except (CLIError, ValueError, TypeError, OSError) as exc:
        # Bad input (arguments, files, checkpoints): one line, no traceback.
        return fail(f"{prog}: error: {exc}", 2)
    except MemoryError as exc:
        # A model or batch too large for this machine: say so in one line.
        return fail(f"{prog}: out of memory: {exc or 'an allocation failed'}", 1)
    except KeyboardInterrupt:
        return fail(f"{prog}: interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
