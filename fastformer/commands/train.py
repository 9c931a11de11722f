"""`fastformer train`: train a Transformer on a built-in task or a data file."""
import os
import sys
import time

from fastformer import distributed
from fastformer.checkpoint import has_checkpoint, read_checkpoint
from fastformer.commands.common import (
    CLIError, model_class, nonnegative_int, positive_float, positive_int, set_threads, unit_float)
from fastformer.commands.ranks import spawn, without_option
from fastformer.data import TASKS, DataFileError, SyntheticTask, TextPairsData, Vocabulary
from fastformer.optim import AdamW, WarmupCosineSchedule, schedule_from_config
from fastformer.trainer import Trainer

DEFAULT_TASK = "reverse"
DEFAULT_CHECKPOINT = "fastformer-checkpoint"

# The defaults reach >= 99% held-out exact match on DEFAULT_TASK (see the README).
DEFAULTS = dict(d_model=64, nhead=4, layers=2, ff=128, dropout=0.0, steps=600, batch_size=64,
                lr=3e-3, warmup=60)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="train a Transformer on a built-in task or a data file",
        description="Train an encoder-decoder Transformer. With no arguments: a small model on "
                    f"the built-in '{DEFAULT_TASK}' task, reporting held-out exact match, saved "
                    f"to ./{DEFAULT_CHECKPOINT}.")
    data = p.add_argument_group("data")
    data.add_argument("--task", choices=sorted(TASKS), default=None,
                      help=f"built-in synthetic task (default {DEFAULT_TASK})")
    data.add_argument("--data", metavar="FILE",
                      help="UTF-8 text file of 'source<TAB>target' lines (character-level; 5%% held out)")
    data.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"],
                      help="examples per batch: the global batch over all MPI ranks (default %(default)s)")
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
    train = p.add_argument_group("training")
    train.add_argument("--steps", type=positive_int, default=DEFAULTS["steps"],
                       help="optimizer steps in all (default %(default)s)")
    train.add_argument("--lr", type=positive_float, default=DEFAULTS["lr"],
                       help="peak learning rate of the warmup + cosine schedule (default %(default)s)")
    train.add_argument("--warmup", type=nonnegative_int, default=DEFAULTS["warmup"],
                       help="warmup steps (default %(default)s)")
    train.add_argument("--eval-every", type=positive_int, default=None,
                       help="steps between held-out evaluations (default: steps / 4)")
    train.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    train.add_argument("--threads", type=positive_int, default=None,
                       help="threads for the compiled kernels (default: OMP_NUM_THREADS or all cores; "
                            "under MPI each rank's share of its node's cores)")
    train.add_argument("--nproc", type=positive_int, default=None,
                       help="train as N data-parallel MPI ranks on this machine (runs mpiexec; "
                            'needs pip install "fastformer[mpi]")')
    train.add_argument("--checkpoint", metavar="DIR", default=DEFAULT_CHECKPOINT,
                       help="checkpoint folder, saved at each evaluation and at the end "
                            "(default ./%(default)s)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run saved in --checkpoint (model, data and schedule "
                            "settings come from the checkpoint; --steps may extend it)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def build_model(args, vocab_size, max_len):
    """The model for `args`: the class `model_class(args.reference)` picks,
    sized by the arguments, for a shared source/target vocabulary."""
    if args.d_model % args.nhead:
        raise CLIError(f"--nhead {args.nhead} must divide --d-model {args.d_model}")
    cls = model_class(args.reference)
    return cls(vocab_size, vocab_size, d_model=args.d_model, nhead=args.nhead,
               num_encoder_layers=args.layers, num_decoder_layers=args.layers,
               dim_feedforward=args.ff, dropout=args.dropout, max_len=max_len, seed=args.seed)


def _load_data(args, manifest=None):
    """The training data: the checkpoint's task when resuming, else --data or --task."""
    task = (manifest or {}).get("task")
    if task is not None and task.get("name") in TASKS:
        return SyntheticTask(**task)
    vocab = None
    if task is not None:  # a data file: same file, batching and vocabulary as the saved run
        args.data, args.task, args.batch_size, args.seed = task["path"], None, task["batch_size"], task["seed"]
        vocab = Vocabulary.from_dict(manifest["vocab"])
    if args.data is not None:
        if args.task is not None:
            raise CLIError("give --task or --data, not both")
        try:
            return TextPairsData.from_file(args.data, batch_size=args.batch_size, seed=args.seed,
                                           vocab=vocab)
        except DataFileError as exc:
            raise CLIError(str(exc)) from None
    return SyntheticTask(args.task or DEFAULT_TASK, batch_size=args.batch_size, seed=args.seed)


def _apply_saved_settings(args, manifest):
    """On --resume: the model settings of the checkpoint (the data comes from its task)."""
    config = manifest["model"]["config"]
    args.d_model, args.nhead = config["d_model"], config["nhead"]
    args.layers, args.ff = config["num_encoder_layers"], config["dim_feedforward"]
    args.dropout, args.seed = config["dropout"], config["seed"]
    if args.micro_batch_size is None:
        args.micro_batch_size = (manifest.get("trainer") or {}).get("micro_batch_size")


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
    data = _load_data(args, manifest)
    # Positions for the longest source and for bos + the longest target.
    max_len = max(data.max_source_len, data.max_target_len + 1)
    if manifest is not None:
        max_len = manifest["model"]["config"]["max_len"]
    model = build_model(args, len(data.vocab), max_len)
    optimizer = AdamW(model, lr=args.lr, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0)
    if manifest is not None and manifest.get("schedule"):
        schedule = schedule_from_config(manifest["schedule"])
    else:
        schedule = WarmupCosineSchedule(args.lr, max(args.warmup, 1), max(args.steps, args.warmup, 1),
                                        min_lr=args.lr / 20)
    trainer = Trainer(model, optimizer, schedule=schedule, clip_grad_norm=1.0,
                      progress=not args.no_progress, micro_batch_size=args.micro_batch_size, world=world)
    eval_every = args.eval_every or max(1, args.steps // 4)
    heldout = data.heldout_batches()
    where = f"data file {args.data}" if args.data else f"task '{data.name}'"
    ranks = f" on {world.size} ranks" if world.size > 1 else ""
    micro = f" (micro-batches of {args.micro_batch_size})" if args.micro_batch_size else ""
    say(f"fastformer train: {type(model).__module__}.{type(model).__name__}, "
        f"{sum(p.data.size for _, p in model.named_parameters()):,} parameters; {where}, "
        f"{len(data.vocab)} symbols; {args.steps} steps of batch {data.batch_size}{micro}{ranks}", file=sys.stderr)
    if manifest is not None:
        say(f"resuming from {args.checkpoint} at step {manifest['step']}", file=sys.stderr)
    start = time.perf_counter()
    history = trainer.fit(data, steps=args.steps, eval_data=heldout or None, eval_every=eval_every,
                          checkpoint_dir=args.checkpoint, checkpoint_every=eval_every,
                          resume=args.resume)
    seconds = time.perf_counter() - start
    if world.is_main:
        _report(history, seconds, args.checkpoint)
    return 0


def _report(history, seconds, checkpoint):
    train = [e for e in history if e.get("tokens")]
    seconds_training = sum(e["tokens"] / e["tokens_per_s"] for e in train)
    tok_s = sum(e["tokens"] for e in train) / seconds_training if train else float("nan")
    final = next((e for e in reversed(history) if "eval_exact_match" in e), None)
    if final is not None:
        print(f"held-out exact match {final['eval_exact_match']:.1%} "
              f"(token accuracy {final['eval_token_accuracy']:.1%}, loss {final['eval_loss']:.4f}, "
              f"{final['eval_examples']} examples) at step {final['step']}")
    print(f"wall time {seconds:.1f} s, {tok_s:,.0f} tokens/s; checkpoint in {os.path.abspath(checkpoint)}")
