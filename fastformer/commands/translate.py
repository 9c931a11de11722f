"""`fastformer translate`: translate lines of text with a trained checkpoint."""
import math
import os
import sys

from fastformer._atomic import atomic_write_bytes
from fastformer.checkpoint import model_from_checkpoint
from fastformer.commands.common import (
    CLIError, _argument_type, add_precision_argument, compute_dtype_of, model_class, positive_int, set_threads)
from fastformer.data.tokenizers import tokenizer_from_manifest
from fastformer.translate import translate


# argument types in the style of fastformer.commands.common's
nonnegative_float = _argument_type(float, lambda v: 0 <= v < math.inf, "a non-negative number")
finite_float = _argument_type(float, math.isfinite, "a number")


def add_arguments(p, beam=4):
    """The options `translate` and its alias `generate` share."""
    p.add_argument("--checkpoint", metavar="DIR", required=True, help="checkpoint folder from `fastformer train`")
    p.add_argument("--input", metavar="FILE", help="UTF-8 text, one source sentence per line (default: stdin)")
    p.add_argument("--output", metavar="FILE", help="write the translations here, atomically (default: stdout)")
    p.add_argument("--beam", type=positive_int, default=beam, help=f"beam size; 1 is greedy (default {beam})")
    p.add_argument("--length-penalty", type=finite_float, default=1.0,
                   help="alpha of the GNMT length penalty ((5 + len) / 6) ** alpha; 0 ranks by the raw "
                        "log-probability sum (default 1.0)")
    p.add_argument("--n-best", type=positive_int, default=1,
                   help="print the K best hypotheses per line as `index TAB score TAB text` (index: the "
                        "input line, from 0), best first (K <= --beam)")
    p.add_argument("--max-tokens", type=positive_int, default=8192,
                   help="token budget of a batch: sentences x longest source (default 8192)")
    p.add_argument("--max-len-a", type=nonnegative_float, default=1.5,
                   help="output cap a * source length + b tokens, per sentence (default a=1.5)")
    p.add_argument("--max-len-b", type=nonnegative_float, default=10.0, help="see --max-len-a (default b=10)")
    p.add_argument("--tsv", action="store_true",
                   help="input lines are `source TAB target`: translate the text before the first TAB")
    p.add_argument("--threads", type=positive_int, default=None, help="threads for the compiled kernels")
    p.add_argument("--reference", action="store_true",
                   help="use the NumPy reference model instead of the compiled one")
    add_precision_argument(p, "the precision the checkpoint was trained in")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "translate", help="translate lines of text with a trained checkpoint",
        description="Translate source lines (from --input or stdin): one output line per input line, in "
                    "input order, detokenized; an empty line gives an empty line. Lines are sorted by "
                    "length and batched by --max-tokens internally. A summary goes to stderr.")
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def read_lines(path):
    """The lines of a UTF-8 file (stdin when path is None), split at newlines
    only (a trailing CR is dropped); CLIError names the file and the first
    line that is not UTF-8."""
    where = path or "stdin"
    if path is None:
        raw = sys.stdin.buffer.read()
    else:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise CLIError(f"{path}: cannot read the input file ({exc.strerror or exc})") from None
    if not raw:
        return []
    chunks = raw.split(b"\n")
    if chunks[-1] == b"":
        chunks.pop()
    lines = []
    for number, chunk in enumerate(chunks, start=1):
        try:
            lines.append(chunk.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as exc:
            raise CLIError(f"{where}, line {number}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    return lines


def load_translator(args):
    """(model, tokenizer) from --checkpoint; CLIError when it has no tokenizer."""
    set_threads(args.threads)
    model, ckpt = model_from_checkpoint(args.checkpoint, model_class(args.reference),
                                        compute_dtype=compute_dtype_of(args, default=None))
    tokenizer = tokenizer_from_manifest(ckpt.manifest, args.checkpoint)
    if tokenizer is None:
        raise CLIError(f"{args.checkpoint}: the checkpoint has no tokenizer to translate with "
                       "(it was saved without a vocabulary)")
    model.eval()
    return model, tokenizer


def format_output(results, n_best):
    """Output text: one line per input line, or `index TAB score TAB text` per hypothesis."""
    def clean(text):  # a newline inside an output would break the line alignment
        return text.replace("\r", " ").replace("\n", " ")

    if n_best == 1:
        return "".join(clean(nbest[0][0]) + "\n" for nbest in results)
    return "".join(f"{i}\t{score:.6f}\t{clean(text)}\n" for i, nbest in enumerate(results) for text, score in nbest)


def run(args, max_batch=None, max_output=None):
    """The command; `generate` adds max_batch (its --batch-size) and
    max_output (its --max-len, checked against the model's positions)."""
    if args.n_best > args.beam:
        raise CLIError(f"--n-best {args.n_best} is more than --beam {args.beam}: a beam search keeps at most "
                       "--beam hypotheses")
    if args.output and not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        raise CLIError(f"--output {args.output}: its folder does not exist")
    model, tokenizer = load_translator(args)
    if max_output is not None and max_output > model.max_len - 1:
        raise CLIError(f"--max-len {max_output} is more than the model's {model.max_len} positions allow "
                       f"({model.max_len - 1} tokens and the eos)")
    lines = read_lines(args.input)
    if args.tsv:
        lines = [line.split("\t", 1)[0] for line in lines]
    results = translate(model, tokenizer, lines, beam_size=args.beam, length_penalty=args.length_penalty,
                        n_best=args.n_best, max_tokens=args.max_tokens, max_len_a=args.max_len_a,
                        max_len_b=args.max_len_b, max_batch=max_batch, where=args.input or "stdin")
    text = format_output(results, args.n_best)
    if args.output:
        atomic_write_bytes(args.output, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    print(results.stats.summary(), file=sys.stderr)
    return 0
