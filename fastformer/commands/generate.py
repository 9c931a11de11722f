"""`fastformer generate`: decode lines with a trained checkpoint."""
import sys

from fastformer.checkpoint import model_from_checkpoint
from fastformer.commands.common import CLIError, model_class, positive_int, set_threads
from fastformer.data import Vocabulary, make_batch
from fastformer.decoding import decode, strip_eos

def add_parser(subparsers):
    p = subparsers.add_parser(
        "generate", help="decode lines with a trained checkpoint",
        description="Read source lines (from --input or stdin; text after a TAB is ignored, so a "
                    "training file works too) and print one greedy decoding per line.")
    p.add_argument("--checkpoint", metavar="DIR", required=True, help="checkpoint folder from `fastformer train`")
    p.add_argument("--input", metavar="FILE", help="UTF-8 text file of source lines (default: stdin)")
    p.add_argument("--max-len", type=positive_int, default=None,
                   help="longest output in tokens (default: the model's max_len)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="lines decoded together (default 64)")
    p.add_argument("--reference", action="store_true",
                   help="use the NumPy reference model instead of the compiled one")
    p.add_argument("--threads", type=positive_int, default=None, help="threads for the compiled kernels")
    p.set_defaults(func=run)
    return p

def _read_lines(path):
    if path is None:
        return sys.stdin.read().splitlines()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise CLIError(f"{path}: cannot read the input file ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise CLIError(f"{path}: not valid UTF-8 text") from None

def _encode_lines(lines, vocab, max_len, where):
    encoded = []
    for number, line in enumerate(lines, start=1):
        source = line.split("\t", 1)[0]
        try:
            ids = vocab.encode(source)
        except ValueError as exc:
            raise CLIError(f"{where}, line {number}: {exc}") from None
        if len(ids) > max_len:
            raise CLIError(f"{where}, line {number}: {len(ids)} characters, the model takes at most {max_len}")
        encoded.append(ids)
    return encoded

def run(args):
    set_threads(args.threads)
    model, ckpt = model_from_checkpoint(args.checkpoint, model_class(args.reference))
    if not ckpt.manifest.get("vocab"):
        raise CLIError(f"{args.checkpoint}: the checkpoint has no tokenizer (vocabulary) to decode with")
    vocab = Vocabulary.from_dict(ckpt.manifest["vocab"])
    model.eval()
    lines = _read_lines(args.input)
    encoded = _encode_lines(lines, vocab, model.max_len, args.input or "stdin")
    max_len = args.max_len or model.max_len
    if max_len > model.max_len:
        raise CLIError(f"--max-len {max_len} is more than the model's {model.max_len} positions")
    out = sys.stdout
    for start in range(0, len(encoded), args.batch_size):
        chunk = encoded[start:start + args.batch_size]
        # An empty line decodes as an empty output line (keeps outputs aligned with inputs).
        batch = make_batch([ids or [vocab.pad_id] for ids in chunk], [[] for _ in chunk])
        mask = batch.src_key_padding_mask.copy()
        for b, ids in enumerate(chunk):
            if not ids:
                mask[b] = False  # one visible pad token rather than an all-masked row
        tokens = decode(model, batch.src, max_len, vocab.bos_id, vocab.eos_id, src_key_padding_mask=mask)
        for ids, row in zip(chunk, strip_eos(tokens, vocab.eos_id)):
            out.write((vocab.decode(row) if ids else "") + "\n")
    out.flush()
    return 0
