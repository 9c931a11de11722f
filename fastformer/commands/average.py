"""`fastformer average`: the mean of several checkpoints' weights."""
import sys

from fastformer.averaging import average_checkpoints


def add_parser(subparsers):
    p = subparsers.add_parser(
        "average", help="write the mean of several checkpoints' model weights",
        description="Average the model weights of checkpoints of one model (same config, dtype and "
                    "tokenizer), in float64, and write them as a new checkpoint (no optimizer state) that "
                    "`translate` loads.")
    p.add_argument("checkpoints", metavar="CKPT_DIR", nargs="+", help="checkpoint folders to average")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for the averaged checkpoint")
    p.set_defaults(func=run)
    return p


def run(args):
    average_checkpoints(args.checkpoints, args.out)
    print(f"averaged {len(args.checkpoints)} checkpoints into {args.out}", file=sys.stderr)
    return 0
