"""`fastformer train`: train a Transformer on a built-in task or a parallel corpus."""
import os
import sys
import time

from fastformer import distributed
from fastformer.checkpoint import has_checkpoint, read_checkpoint
from fastformer.commands.common import (
    PRECISIONS, CLIError, add_precision_argument, compute_dtype_of, model_class, nonnegative_int, positive_float,
    positive_int, set_threads, unit_float)
from fastformer.commands.ranks import spawn, without_option
from fastformer.data import TASKS, DataFileError, SyntheticTask, TextPairsData, Vocabulary
from fastformer.data.corpus import CorpusFiles, iter_pairs
from fastformer.data.subword import SentencePieceTokenizer
from fastformer.data.tokenizers import tokenizer_from_manifest
from fastformer.data.translation_data import CONFIG_NAME as CORPUS_TASK
from fastformer.data.translation_data import TranslationData
from fastformer.optim import AdamW, WarmupCosineSchedule, schedule_from_config
from fastformer.trainer import Trainer
from fastformer.validation import Validator

DEFAULT_TASK = "reverse"
DEFAULT_CHECKPOINT = "fastformer-checkpoint"
CACHE_DIR = "cache"  # inside the checkpoint folder: the corpus tokenized once

# The defaults reach >= 99% held-out exact match on DEFAULT_TASK (see the README).
DEFAULTS = dict(d_model=64, nhead=4, layers=2, ff=128, dropout=0.0, steps=600, batch_size=64,
                lr=3e-3, warmup=60)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="train a Transformer on a built-in task or a parallel corpus",
        description="Train an encoder-decoder Transformer. With no arguments: a small model on "
                    f"the built-in '{DEFAULT_TASK}' task, reporting held-out exact match, saved "
                    f"to ./{DEFAULT_CHECKPOINT}. With --data (or --src and --tgt): a translation model "
                    "on your parallel corpus, with a sentencepiece vocabulary trained on it, token-budget "
                    "batches and BLEU/chrF validation.")
    data = p.add_argument_group("data")
    data.add_argument("--task", choices=sorted(TASKS), default=None,
                      help=f"built-in synthetic task (default {DEFAULT_TASK})")
    data.add_argument("--data", metavar="FILE", help="UTF-8 text file of 'source<TAB>target' lines")
    data.add_argument("--src", metavar="FILE", help="source side of a parallel corpus (with --tgt)")
    data.add_argument("--tgt", metavar="FILE", help="target side of a parallel corpus: line i translates "
                                                    "line i of --src")
    data.add_argument("--valid", metavar="FILE",
                      help="validation pairs ('source<TAB>target'); default: a seeded 5%% hold-out "
                           "(at most 1000 pairs) of the training data")
    data.add_argument("--tokenizer", choices=("sentencepiece", "char"), default=None,
                      help="sentencepiece subwords trained on the training data (the default with a corpus), "
                           "or characters (with --data alone: today's character-level training)")
    data.add_argument("--vocab-size", type=positive_int, default=8000,
                      help="sentencepiece pieces per vocabulary, specials included (default %(default)s)")
    data.add_argument("--joint-vocab", action="store_true",
                      help="one sentencepiece model for source and target (default: one per side)")
    data.add_argument("--spm-model-type", choices=("unigram", "bpe"), default="unigram",
                      help="sentencepiece model type (default %(default)s)")
    data.add_argument("--max-tokens", type=positive_int, default=None,
                      help="token budget per batch: padded source + target tokens, never exceeded "
                           "(default 4096 with a sentencepiece corpus)")
    data.add_argument("--max-len", type=positive_int, default=256,
                      help="longest training sentence kept, in tokens (target with its eos), and the "
                           "model's positions (default %(default)s)")
    data.add_argument("--max-ratio", type=positive_float, default=None,
                      help="drop training pairs whose longer side has more than this many times the tokens "
                           "of the shorter (default: no ratio filter)")
    data.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"],
                      help="examples per batch for built-in tasks and character data without --max-tokens: "
                           "the global batch over all MPI ranks (default %(default)s)")
    data.add_argument("--micro-batch-size", type=positive_int, default=None,
                      help="examples per gradient computation: each batch is cut into micro-batches, "
                           "shared out over the MPI ranks and summed in a fixed order, so a run gives the "
                           "same weights on any number of ranks (default: the batch over the ranks; "
                           "on --resume, the checkpoint's)")
    model = p.add_argument_group("model")
    model.add_argument("--d-model", type=positive_int, default=DEFAULTS["d_model"],
                       help="model width (default %(default)s)")
    model.add_argument("--nhead", type=positive_int, default=DEFAULTS["nhead"],
                       help="attention heads (default %(default)s)")
    model.add_argument("--layers", type=positive_int, default=DEFAULTS["layers"],
                       help="encoder layers and decoder layers, each (default %(default)s)")
    model.add_argument("--ff", type=positive_int, default=DEFAULTS["ff"],
                       help="feed-forward width (default %(default)s)")
    model.add_argument("--dropout", type=unit_float, default=DEFAULTS["dropout"],
                       help="dropout probability (default %(default)s)")
    model.add_argument("--reference", action="store_true",
                       help="use the NumPy reference model instead of the compiled one")
    add_precision_argument(model, "fp32 (on --resume, the checkpoint's)")
    train = p.add_argument_group("training")
    train.add_argument("--steps", type=positive_int, default=DEFAULTS["steps"],
                       help="optimizer steps in all (default %(default)s)")
    train.add_argument("--accum", type=positive_int, default=1,
                       help="batches per optimizer step, the loss normalised by all their target tokens "
                            "(default 1; on --resume, the checkpoint's)")
    train.add_argument("--lr", type=positive_float, default=DEFAULTS["lr"],
                       help="peak learning rate of the warmup + cosine schedule (default %(default)s)")
    train.add_argument("--warmup", type=nonnegative_int, default=DEFAULTS["warmup"],
                       help="warmup steps (default %(default)s)")
    train.add_argument("--label-smoothing", type=unit_float, default=0.0,
                       help="label smoothing of the training loss (default %(default)s)")
    train.add_argument("--ema", type=unit_float, default=None, metavar="DECAY",
                       help="keep an exponential moving average of the weights with this decay (e.g. 0.9999), "
                            "used for validation and saved with the checkpoints")
    train.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    train.add_argument("--threads", type=positive_int, default=None,
                       help="threads for the compiled kernels (default: OMP_NUM_THREADS or all cores; "
                            "under MPI each rank's share of its node's cores)")
    train.add_argument("--nproc", type=positive_int, default=None,
                       help="train as N data-parallel MPI ranks on this machine (runs mpiexec; "
                            'needs pip install "fastformer[mpi]")')
    valid = p.add_argument_group("validation and checkpoints")
    valid.add_argument("--valid-every", "--eval-every", dest="valid_every", type=positive_int, default=None,
                       help="steps between validations (loss, and BLEU and chrF of beam output on a corpus; "
                            "exact match on a built-in task), each followed by a checkpoint "
                            "(default: steps / 4)")
    valid.add_argument("--valid-metric", choices=("bleu", "chrf", "loss"), default="bleu",
                       help="what decides the best checkpoint (DIR/best) and early stopping (default bleu)")
    valid.add_argument("--early-stopping", type=positive_int, default=None, metavar="N",
                       help="stop after N validations in a row without a better --valid-metric")
    valid.add_argument("--valid-beam", type=positive_int, default=4,
                       help="beam size of validation decoding (default %(default)s)")
    valid.add_argument("--checkpoint", metavar="DIR", default=DEFAULT_CHECKPOINT,
                       help="checkpoint folder: the last state (resumable), with DIR/best the best "
                            "validated weights (default ./%(default)s)")
    valid.add_argument("--resume", action="store_true",
                       help="continue the run saved in --checkpoint (model, data and schedule "
                            "settings come from the checkpoint; --steps may extend it)")
    valid.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def build_model(args, tokenizer, max_len):
    """The model for `args`: the class `model_class(args.reference)` picks,
    sized by the arguments, for the tokenizer's source and target vocabularies."""
    if args.d_model % args.nhead:
        raise CLIError(f"--nhead {args.nhead} must divide --d-model {args.d_model}")
    cls = model_class(args.reference)
    return cls(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, d_model=args.d_model, nhead=args.nhead,
               num_encoder_layers=args.layers, num_decoder_layers=args.layers,
               dim_feedforward=args.ff, dropout=args.dropout, max_len=max_len, seed=args.seed,
               compute_dtype=compute_dtype_of(args))


def _corpus_files(args):
    if args.data is not None and (args.src is not None or args.tgt is not None):
        raise CLIError("give --data or --src and --tgt, not both")
    if (args.src is None) != (args.tgt is None):
        raise CLIError("--src and --tgt go together: give both files of the parallel corpus")
    if args.data is None and args.src is None:
        return None
    if args.task is not None:
        raise CLIError("give --task or a corpus (--data, or --src and --tgt), not both")
    return CorpusFiles.of(args.data, args.src, args.tgt)


def _char_file_run(args):
    """--data with --tokenizer char and nothing of the corpus path: today's
    character-level training (fixed batches of --batch-size, 5% held out, exact match)."""
    return (args.tokenizer == "char" and args.src is None and args.valid is None and args.max_tokens is None)


def _train_tokenizer(args, files, say):
    """A tokenizer for a new run on `files`: characters, or sentencepiece trained on the training side."""
    sources, targets = [], []
    for source, target in iter_pairs(files):
        if source and target:
            sources.append(source)
            targets.append(target)
    if not sources:
        raise CLIError(f"{files}: no training pairs (every line has an empty side)")
    if args.tokenizer == "char":
        return Vocabulary.from_texts(sources + targets)
    start = time.perf_counter()
    try:
        tokenizer = SentencePieceTokenizer.train(sources, targets, args.vocab_size, model_type=args.spm_model_type,
                                                 joint=args.joint_vocab, seed=args.seed)
    except ValueError as exc:
        raise CLIError(f"--vocab-size {args.vocab_size}: {exc}") from None
    say(f"sentencepiece {args.spm_model_type} {'joint ' if args.joint_vocab else ''}vocabulary: "
        f"{tokenizer.src_vocab_size:,} source / {tokenizer.tgt_vocab_size:,} target pieces "
        f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return tokenizer


def _corpus_data(args, files, tokenizer, config=None):
    """TranslationData for a new run (from the arguments) or a resumed one (from its saved config)."""
    cache = os.path.join(args.checkpoint, CACHE_DIR)
    try:
        if config is not None:
            return TranslationData.from_config(config, tokenizer, cache_dir=cache)
        return TranslationData(tokenizer, data=args.data, src=args.src, tgt=args.tgt, valid=args.valid,
                               max_tokens=args.max_tokens or 4096, max_len=args.max_len,
                               max_ratio=args.max_ratio, seed=args.seed,
                               cache_dir=cache)
    except DataFileError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        if "max_tokens" in str(exc):
            raise CLIError(f"--max-tokens {args.max_tokens or 4096}: {exc}") from None
        raise


def _load_data(args, say, manifest=None):
    """The training data: the checkpoint's when resuming, else a corpus (--data or --src/--tgt) or --task."""
    task = (manifest or {}).get("task")
    if task is not None and task.get("name") in TASKS:
        return SyntheticTask(**task)
    if task is not None and task.get("name") == CORPUS_TASK:
        return _corpus_data(args, None, tokenizer_from_manifest(manifest, args.checkpoint), config=task)
    if task is not None:  # a character data file: same file, batching and vocabulary as the saved run
        args.data, args.task, args.batch_size, args.seed = task["path"], None, task["batch_size"], task["seed"]
        return _char_file(args, Vocabulary.from_dict(manifest["vocab"]))
    files = _corpus_files(args)
    if files is None:
        return SyntheticTask(args.task or DEFAULT_TASK, batch_size=args.batch_size, seed=args.seed)
    if args.tokenizer is None:
        args.tokenizer = "sentencepiece"
    if _char_file_run(args):
        return _char_file(args)
    return _corpus_data(args, files, _train_tokenizer(args, files, say))


def _char_file(args, vocab=None):
    try:
        return TextPairsData.from_file(args.data, batch_size=args.batch_size, seed=args.seed, vocab=vocab)
    except DataFileError as exc:
        raise CLIError(str(exc)) from None


def _apply_saved_settings(args, manifest):
    """On --resume: the model and trainer settings of the checkpoint (the data comes from its task)."""
    config = manifest["model"]["config"]
    args.d_model, args.nhead = config["d_model"], config["nhead"]
    args.layers, args.ff = config["num_encoder_layers"], config["dim_feedforward"]
    args.dropout, args.seed = config["dropout"], config["seed"]
    if args.precision is None:
        saved = manifest["model"].get("compute_dtype", "float32")
        names = {dtype: name for name, dtype in PRECISIONS.items()}
        if saved not in names:
            raise CLIError(f"{args.checkpoint}: the checkpoint names an unknown compute_dtype {saved!r}")
        args.precision = names[saved]
    trainer = manifest.get("trainer") or {}
    if args.micro_batch_size is None:
        args.micro_batch_size = trainer.get("micro_batch_size")
    args.accum = trainer.get("accum") or 1
    args.label_smoothing = trainer.get("label_smoothing") or 0.0
    ema = trainer.get("ema")
    args.ema = None if ema is None else ema["decay"]


def _validator(args, data):
    """BLEU/chrF validation on a corpus (None for built-in tasks and character files: exact match)."""
    if not isinstance(data, TranslationData) or not data.valid_sources:
        return None
    return Validator(data.valid_sources, data.valid_references, data.vocab, beam_size=args.valid_beam,
                     max_tokens=data.max_tokens)


def run(args):
    if args.nproc is not None:
        return spawn(args.nproc, without_option(args.argv, "--nproc"))
    world = distributed.init()
    if args.threads is None and world.size > 1 and "OMP_NUM_THREADS" not in os.environ:
        args.threads = distributed.share_cores(world)
    set_threads(args.threads)
    say = print if world.is_main else (lambda *a, **k: None)  # rank 0 speaks for the job
    manifest = None
    if args.resume:
        if not has_checkpoint(args.checkpoint):
            raise CLIError(f"--resume: no checkpoint in {args.checkpoint}")
        manifest = read_checkpoint(args.checkpoint).manifest
        _apply_saved_settings(args, manifest)
    data = _load_data(args, say, manifest)
    if manifest is not None:
        max_len = manifest["model"]["config"]["max_len"]
    elif isinstance(data, TranslationData):
        max_len = args.max_len
    else:  # positions for the longest source and for bos + the longest target
        max_len = max(data.max_source_len, data.max_target_len + 1)
    model = build_model(args, data.vocab, max_len)
    optimizer = AdamW(model, lr=args.lr, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0)
    if manifest is not None and manifest.get("schedule"):
        schedule = schedule_from_config(manifest["schedule"])
    else:
        schedule = WarmupCosineSchedule(args.lr, max(args.warmup, 1), max(args.steps, args.warmup, 1),
                                        min_lr=args.lr / 20)
    trainer = Trainer(model, optimizer, schedule=schedule, clip_grad_norm=1.0, label_smoothing=args.label_smoothing,
                      progress=not args.no_progress, micro_batch_size=args.micro_batch_size, world=world,
                      accum=args.accum, ema=args.ema)
    valid_every = args.valid_every or max(1, args.steps // 4)
    validator = _validator(args, data)
    heldout = None if validator is not None else data.heldout_batches()
    _describe(say, args, model, data, world)
    if manifest is not None:
        say(f"resuming from {args.checkpoint} at step {manifest['step']}", file=sys.stderr)
    start = time.perf_counter()
    history = trainer.fit(data, steps=args.steps, eval_data=heldout or None, eval_every=valid_every,
                          checkpoint_dir=args.checkpoint, checkpoint_every=valid_every, resume=args.resume,
                          valid=validator, valid_every=valid_every if validator else None,
                          valid_metric=args.valid_metric, early_stopping=args.early_stopping if validator else None)
    seconds = time.perf_counter() - start
    if world.is_main:
        _report(history, seconds, args.checkpoint)
    return 0


def _describe(say, args, model, data, world):
    if isinstance(data, TranslationData):
        where = f"corpus {data.files}, {data.vocab.kind} vocabulary"
        batches = f"batches of at most {data.max_tokens:,} tokens"
    else:
        where = f"data file {args.data}" if args.data else f"task '{data.name}'"
        batches = f"batch {data.batch_size}"
    ranks = f" on {world.size} ranks" if world.size > 1 else ""
    micro = f" (micro-batches of {args.micro_batch_size})" if args.micro_batch_size else ""
    accum = f" x {args.accum} accumulated" if args.accum > 1 else ""
    precision = "bf16 products, fp32 weights" if model.compute_dtype == "bfloat16" else "fp32"
    say(f"fastformer train: {type(model).__module__}.{type(model).__name__}, "
        f"{sum(p.data.size for _, p in model.named_parameters()):,} parameters in {precision}; {where}; "
        f"{args.steps} steps of {batches}{accum}{micro}{ranks}", file=sys.stderr)
    if isinstance(data, TranslationData):
        say(data.describe(), file=sys.stderr)


def _report(history, seconds, checkpoint):
    train = [e for e in history if e.get("tokens")]
    seconds_training = sum(e["tokens"] / e["tokens_per_s"] for e in train)
    tok_s = sum(e["tokens"] for e in train) / seconds_training if train else float("nan")
    final = next((e for e in reversed(history) if "eval_exact_match" in e), None)
    if final is not None:
        print(f"held-out exact match {final['eval_exact_match']:.1%} "
              f"(token accuracy {final['eval_token_accuracy']:.1%}, loss {final['eval_loss']:.4f}, "
              f"{final['eval_examples']} examples) at step {final['step']}")
    valid = next((e for e in reversed(history) if "valid_bleu" in e), None)
    if valid is not None:
        print(f"validation BLEU {valid['valid_bleu']:.2f}, chrF {valid['valid_chrf']:.2f}, "
              f"loss {valid['valid_loss']:.4f} at step {valid['step']}")
    print(f"wall time {seconds:.1f} s, {tok_s:,.0f} tokens/s; checkpoint in {os.path.abspath(checkpoint)}")
