"""`fastformer make-data`: write a built-in task's data files (train, valid, test)."""
import os

from fastformer._atomic import atomic_write_bytes
from fastformer.commands.common import nonnegative_int, positive_int
from fastformer.data.translation_task import translation_splits

TASKS = ("translation",)
DEFAULT_SIZES = {"train": 50_000, "valid": 500, "test": 500}


def add_parser(subparsers):
    p = subparsers.add_parser(
        "make-data", help="write a built-in task's training, validation and test files",
        description="Write the built-in English->German translation task (dates, times, quantities "
                    "and prices) as DIR/train.tsv, DIR/valid.tsv, DIR/test.tsv ('source<TAB>target' "
                    "lines) plus DIR/test.src and DIR/test.ref. No English sentence appears in two "
                    "splits; the same --seed gives the same files.")
    p.add_argument("task", choices=TASKS, help="the built-in task")
    p.add_argument("--out", metavar="DIR", required=True, help="folder to write (created if needed)")
    p.add_argument("--train", type=positive_int, default=DEFAULT_SIZES["train"],
                   help="training pairs (default %(default)s)")
    p.add_argument("--valid", type=nonnegative_int, default=DEFAULT_SIZES["valid"],
                   help="validation pairs (default %(default)s)")
    p.add_argument("--test", type=nonnegative_int, default=DEFAULT_SIZES["test"],
                   help="test pairs (default %(default)s)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default %(default)s)")
    p.set_defaults(func=run)
    return p


def _lines(texts):
    return "".join(text + "\n" for text in texts).encode("utf-8")


def run(args):
    splits = translation_splits({"train": args.train, "valid": args.valid, "test": args.test}, seed=args.seed)
    os.makedirs(args.out, exist_ok=True)
    outputs = [(f"{name}.tsv", _lines(f"{s}\t{t}" for s, t in pairs), len(pairs)) for name, pairs in splits.items()]
    outputs += [("test.src", _lines(s for s, _ in splits["test"]), len(splits["test"])),
                ("test.ref", _lines(t for _, t in splits["test"]), len(splits["test"]))]
    for name, data, count in outputs:
        path = os.path.join(args.out, name)
        atomic_write_bytes(path, data)
        print(f"wrote {path}: {count} {'pairs' if name.endswith('.tsv') else 'lines'}")
    return 0
