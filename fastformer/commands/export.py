"""`fastformer export`: write a checkpoint for a serving engine (CTranslate2)."""
import sys

from fastformer.commands.common import CLIError

QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "export", help="write a checkpoint as a CTranslate2 model",
        description="Convert a checkpoint into a CTranslate2 model folder (exactly: CTranslate2 decodes the "
                    "same tokens), with the tokenizer's vocabulary. Needs pip install \"fastformer[deploy]\". "
                    "CTranslate2 can also quantize at load time: Translator(DIR, compute_type=\"int8\").")
    p.add_argument("--format", choices=("ctranslate2",), required=True, help="the engine to export for")
    p.add_argument("--checkpoint", metavar="DIR", required=True, help="checkpoint folder from `fastformer train`")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for the exported model")
    p.add_argument("--quantization", choices=QUANTIZATIONS, default=None,
                   help="store the weights quantized (default: float32)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run)
    return p


def run(args):
    from fastformer.export.ctranslate2 import export_checkpoint

    try:
        out = export_checkpoint(args.checkpoint, args.out, quantization=args.quantization, force=args.force)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    print(f"exported {args.checkpoint} as a CTranslate2 model into {out}", file=sys.stderr)
    return 0
