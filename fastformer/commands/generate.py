"""`fastformer generate`: the older name of `fastformer translate`, greedy by default.

Its own flags map onto translate's: --max-len N caps every output at N tokens
(--max-len-a 0 --max-len-b N), --batch-size caps the sentences per batch;
text after a TAB is ignored (as `translate --tsv`), so a training file works too.
"""
from fastformer.commands import translate
from fastformer.commands.common import positive_int


def add_parser(subparsers):
    p = subparsers.add_parser(
        "generate", help="an alias of `translate` (greedy by default)",
        description="Read source lines (from --input or stdin; text after a TAB is ignored, so a training "
                    "file works too) and print one decoding per line: `fastformer translate` with --beam 1 "
                    "and --tsv by default.")
    translate.add_arguments(p, beam=1)
    p.add_argument("--max-len", type=positive_int, default=None,
                   help="longest output in tokens (default: --max-len-a/--max-len-b)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="most lines decoded together")
    p.set_defaults(func=run, tsv=True)
    return p


def run(args):
    if args.max_len is not None:
        args.max_len_a, args.max_len_b = 0.0, float(args.max_len)
    return translate.run(args, max_batch=args.batch_size, max_output=args.max_len)
