"""The training loop: steps, evaluation, checkpoints, history and resume."""
import json
import math
import numbers
import os
import sys
import time

import numpy as np
from tqdm.auto import tqdm

from fastformer import distributed
from fastformer._atomic import atomic_write_bytes
from fastformer._kernels import flat_buffers, kernel
from fastformer.checkpoint import has_checkpoint, load_checkpoint, read_checkpoint, save_checkpoint
from fastformer.data.batch import IGNORE_INDEX, target_sequences
from fastformer.data.vocab import BOS_ID, EOS_ID
from fastformer.data_parallel import DataParallel, check_same_setup, setup_digests
from fastformer.decoding import decode, strip_eos
from fastformer.losses import cross_entropy
from fastformer.optim.clip import clip_grad_norm as _clip_grad_norm
from fastformer.optim.clip import grad_norm as _grad_norm

HISTORY_FILE = "history.jsonl"


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or infinite loss (or gradient norm) and stopped."""


class _SequenceSource:
    """Adapts a list of Batch to the `get_batch(step)` protocol (cycling)."""

    def __init__(self, batches):
        self.batches = list(batches)
        if not self.batches:
            raise ValueError("train_data holds no batches")
        self.batches_per_epoch = len(self.batches)

    def get_batch(self, step):
        return self.batches[step % len(self.batches)]


def _as_source(train_data):
    if callable(getattr(train_data, "get_batch", None)):
        return train_data
    if isinstance(train_data, (list, tuple)):
        return _SequenceSource(train_data)
    raise TypeError("train_data must have get_batch(step) (a fastformer.data task or "
                    f"dataset) or be a list of Batch, got {type(train_data).__name__}")


def _check_count(name, value, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class Trainer:
    """Trains `model` with `optimizer` on batches (see fastformer.data.Batch).

    schedule: a callable step -> lr (steps count from 1) setting
    `optimizer.lr` before each update, or None for a fixed lr;
    clip_grad_norm: max L2 norm of all gradients, or None;
    label_smoothing: of the training loss (evaluation reports plain
    cross-entropy); progress: show a tqdm bar; log_every: steps between
    history entries; max_decode_len: decode length for exact match (default:
    each batch's target length); vocab / task: saved with checkpoints
    (taken from train_data when it has `vocab` / `config()`).

    micro_batch_size: cut each (global) batch into micro-batches of this
    many examples, each one's gradient computed alone and all of them summed
    in a fixed order (see fastformer.data_parallel); world: a
    fastformer.distributed.World (default: this process's, so a Trainer
    under `mpiexec` trains data parallel, each rank computing its share of
    the micro-batches; without micro_batch_size, one micro-batch per rank).
    Training with the same micro_batch_size gives bitwise the same weights
    on any number of ranks. Rank 0 alone writes checkpoints and history,
    shows progress and evaluates.

    `step` counts the updates made so far; `fit(steps=n)` trains until step n.
    Every step depends only on (model, optimizer, schedule, data seed, step),
    so resuming from a checkpoint reproduces an uninterrupted run bit for bit.
    """

    def __init__(self, model, optimizer, schedule=None, clip_grad_norm=None, label_smoothing=0.0,
                 progress=True, log_every=10, max_decode_len=None, vocab=None, task=None,
                 micro_batch_size=None, world=None):
        if getattr(optimizer, "model", model) is not model:
            raise ValueError("the optimizer was built for another model")
        if schedule is not None and not callable(schedule):
            raise TypeError(f"schedule must be callable (step -> lr) or None, got {type(schedule).__name__}")
        if clip_grad_norm is not None and (isinstance(clip_grad_norm, bool)
                                           or not isinstance(clip_grad_norm, numbers.Real)
                                           or not clip_grad_norm > 0):
            raise ValueError(f"clip_grad_norm must be a positive number or None, got {clip_grad_norm!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.clip_grad_norm = clip_grad_norm
        self.label_smoothing = float(label_smoothing)
        self.progress = bool(progress)
        self.log_every = _check_count("log_every", log_every)
        self.max_decode_len = _check_count("max_decode_len", max_decode_len)
        self.vocab, self.task = vocab, task
        self.micro_batch_size = _check_count("micro_batch_size", micro_batch_size)
        self.world = distributed.init() if world is None else world
        self.data_parallel = None  # made for the first batch (see plan_micro_batches)
        self.step = 0
        self.history = []

    @property
    def bos_id(self):
        return self.vocab.bos_id if self.vocab is not None else BOS_ID

    @property
    def eos_id(self):
        return self.vocab.eos_id if self.vocab is not None else EOS_ID

    # ----- one step ---------------------------------------------------------------

    def train_step(self, batch):
        """One update from `batch` -> {"loss", "lr", "grad_norm", "tokens"}.

        Raises NonFiniteLossError, before the optimizer step, when the loss or
        a gradient is NaN or infinite (naming the first such parameter), and
        after it if the step itself made a weight non-finite (naming it).
        """
        model, opt = self.model, self.optimizer
        if self.schedule is not None:
            opt.lr = float(self.schedule(self.step + 1))
        model.train()
        opt.zero_grad()
        parallel = self.plan_micro_batches(len(batch))
        if parallel is not None:  # micro-batches (and ranks): the global gradient lands in model's grads
            loss = parallel.gradient(batch, self.step, self.label_smoothing)
            if not math.isfinite(loss):
                raise NonFiniteLossError(self._stop_message(f"the loss is {loss}"))
        else:
            logits = model.forward(batch.src, batch.tgt_in, src_key_padding_mask=batch.src_key_padding_mask,
                                   tgt_key_padding_mask=batch.tgt_key_padding_mask)
            loss, dlogits = cross_entropy(logits, batch.tgt_out, label_smoothing=self.label_smoothing)
            if not math.isfinite(loss):
                raise NonFiniteLossError(self._stop_message(f"the loss is {loss}"))
            model.backward(dlogits)
        if self.clip_grad_norm is not None:
            norm = _clip_grad_norm(model, self.clip_grad_norm)  # leaves non-finite gradients as they are
        else:
            norm = _grad_norm(model)
        if not math.isfinite(norm):
            name = _first_nonfinite(model, "grad")
            raise NonFiniteLossError(self._stop_message(f"the gradient norm is {norm}, first non-finite "
                                                        f"in the gradient of {name!r}"))
        opt.step()
        self.step += 1
        if not math.isfinite(_weight_norm(model)):
            name = _first_nonfinite(model, "data")
            raise NonFiniteLossError(
                f"training stopped at step {self.step}: the optimizer step made the weights of {name!r} "
                f"non-finite (no checkpoint was written for it; the last one is intact). "
                f"Try a lower learning rate or clip_grad_norm.")
        return {"loss": loss, "lr": opt.lr, "grad_norm": norm, "tokens": batch.num_tokens}

    def plan_micro_batches(self, batch_size):
        """The DataParallel for global batches of `batch_size`, or None when the
        whole batch is one gradient computation in one process."""
        if self.data_parallel is None and (self.micro_batch_size is not None or self.world.size > 1):
            micro = self.micro_batch_size
            if micro is None:
                if batch_size % self.world.size:
                    raise ValueError(f"the global batch size {batch_size} does not divide over "
                                     f"{self.world.size} ranks: give micro_batch_size")
                micro = batch_size // self.world.size
            self.data_parallel = DataParallel(self.model, micro, batch_size, self.world)
        return self.data_parallel

    def _stop_message(self, what):
        return (f"training stopped at step {self.step + 1}: {what} "
                f"(parameters left as after step {self.step}; no checkpoint was written for it). "
                f"Try a lower learning rate, a warmup schedule or clip_grad_norm.")

    # ----- evaluation -------------------------------------------------------------

    def evaluate(self, eval_data, exact_match=True):
        """Loss (plain cross-entropy, per target token), teacher-forced token
        accuracy and, if `exact_match`, the fraction of examples whose greedy
        decoding equals the target exactly.

        eval_data: a list of Batch, or an object with heldout_batches().
        Returns {"eval_loss", "eval_token_accuracy", "eval_exact_match", "eval_examples"}.
        The model's training mode and dropout counter are left unchanged.
        """
        batches = eval_data.heldout_batches() if hasattr(eval_data, "heldout_batches") else list(eval_data)
        if not batches:
            raise ValueError("eval_data holds no batches")
        model = self.model
        was_training = model.training
        model.eval()
        loss_sum = correct = tokens = exact = examples = 0
        try:
            for batch in batches:
                logits = model.forward(batch.src, batch.tgt_in,
                                       src_key_padding_mask=batch.src_key_padding_mask,
                                       tgt_key_padding_mask=batch.tgt_key_padding_mask)
                loss, _ = cross_entropy(logits, batch.tgt_out)
                valid = batch.tgt_out != IGNORE_INDEX
                n = int(valid.sum())
                loss_sum += loss * n
                tokens += n
                correct += int((logits.argmax(axis=-1) == batch.tgt_out)[valid].sum())
                examples += len(batch)
                if exact_match:
                    max_len = self.max_decode_len or batch.tgt_out.shape[1]
                    out = decode(model, batch.src, max_len, self.bos_id, self.eos_id,
                                 src_key_padding_mask=batch.src_key_padding_mask)
                    wanted = target_sequences(batch.tgt_out, self.eos_id)
                    exact += sum(a == b for a, b in zip(strip_eos(out, self.eos_id), wanted))
        finally:
            model.train(was_training)
        metrics = {"eval_loss": loss_sum / tokens, "eval_token_accuracy": correct / tokens,
                   "eval_examples": examples}
        if exact_match:
            metrics["eval_exact_match"] = exact / examples
        return metrics

    # ----- checkpoints ------------------------------------------------------------

    def save(self, directory):
        """Write a checkpoint of model, optimizer, schedule and step to `directory`
        (rank 0 only: other ranks write nothing and return None)."""
        if not self.world.is_main:
            return None
        micro = self.data_parallel.micro_batch_size if self.data_parallel else self.micro_batch_size
        state = {"step": self.step, "label_smoothing": self.label_smoothing,
                 "clip_grad_norm": self.clip_grad_norm, "micro_batch_size": micro}
        schedule = self.schedule if hasattr(self.schedule, "config") else None
        return save_checkpoint(directory, self.model, self.optimizer, step=self.step, schedule=schedule,
                               trainer_state=state, vocab=self.vocab, task=self.task)

    def _start_data_parallel(self, source, total):
        """Plan the micro-batches (refusing a batch that does not divide) and,
        on several ranks, check that every rank starts the same job."""
        if self.micro_batch_size is None and self.world.size == 1:
            return
        first = source.get_batch(self.step)
        batch_size = getattr(source, "batch_size", None) or len(first)
        parallel = self.plan_micro_batches(batch_size)
        if self.world.size > 1:
            check_same_setup(self.world, setup_digests(self, first, total, parallel.micro_batch_size))

    def load(self, directory):
        """Restore model, optimizer and step from a checkpoint written by `save`.

        ValueError if the checkpoint's schedule differs from this trainer's
        (resuming under another schedule would not continue the same run)."""
        schedule = self.schedule.config() if hasattr(self.schedule, "config") else None
        ckpt = read_checkpoint(directory)
        saved = ckpt.manifest.get("schedule")
        if saved != schedule:
            raise ValueError(f"{directory}: the checkpoint was trained with schedule {saved}, "
                             f"this trainer has {schedule}")
        load_checkpoint(ckpt, self.model, self.optimizer)
        self.step = int(ckpt.step)
        return ckpt

    # ----- the loop ---------------------------------------------------------------

    def fit(self, train_data, steps=None, epochs=None, eval_data=None, eval_every=None,
            checkpoint_dir=None, checkpoint_every=None, resume=False):
        """Train until `steps` updates in all (or `epochs` passes over an
        epoch-based dataset) -> the history: a list of metric dicts.

        train_data: an object with get_batch(step) (a SyntheticTask,
        TextPairsData, BucketedBatches) or a list of Batch. eval_data: see
        `evaluate`; evaluated every `eval_every` steps and at the end.
        checkpoint_dir: saved every `checkpoint_every` steps and at the end;
        each history entry is appended to checkpoint_dir/history.jsonl.
        resume: continue from checkpoint_dir's checkpoint when there is one.

        A non-finite loss raises NonFiniteLossError; no checkpoint is written
        after it, so the last good one stays.
        """
        source = _as_source(train_data)
        if (steps is None) == (epochs is None):
            raise ValueError("give exactly one of steps= and epochs=")
        if steps is not None:
            total = _check_count("steps", steps)
        else:
            per_epoch = getattr(source, "batches_per_epoch", None)
            if not per_epoch:
                raise ValueError("epochs= needs epoch-based train_data; this one is a stream: use steps=")
            total = _check_count("epochs", epochs) * per_epoch
        eval_every = _check_count("eval_every", eval_every)
        checkpoint_every = _check_count("checkpoint_every", checkpoint_every)
        main = self.world.is_main
        if not main:
            eval_data = None  # rank 0 evaluates
        if self.vocab is None:
            self.vocab = getattr(train_data, "vocab", None)
        if self.task is None and callable(getattr(train_data, "config", None)):
            self.task = train_data.config()
        history_path = resumed_at = None
        if checkpoint_dir is not None:
            checkpoint_dir = os.fspath(checkpoint_dir)
            os.makedirs(checkpoint_dir, exist_ok=True)
            history_path = os.path.join(checkpoint_dir, HISTORY_FILE)
            if resume and has_checkpoint(checkpoint_dir):
                self.load(checkpoint_dir)
                resumed_at = self.step
            if main:
                # Keep history.jsonl the story of the run the folder holds: drop entries
                # past the step we start from (a crashed run's tail, or an older run's).
                _truncate_history(history_path, self.step)
            else:
                history_path = None
        elif resume:
            raise ValueError("resume=True needs checkpoint_dir")
        if self.step < total:
            self._start_data_parallel(source, total)

        run = _RunLog(self, history_path, total)
        saved_at = evaluated_at = None
        try:
            while self.step < total:
                batch = source.get_batch(self.step)
                start = time.perf_counter()
                try:
                    metrics = self.train_step(batch)
                except NonFiniteLossError as exc:
                    run.record({"step": self.step + 1, "error": str(exc)})
                    raise
                run.add_step(metrics, time.perf_counter() - start)
                step = self.step
                do_eval = eval_data is not None and (step == total or (eval_every and step % eval_every == 0))
                if do_eval or step == total or step % self.log_every == 0:
                    entry = run.train_entry()
                    if do_eval:
                        entry.update(self.evaluate(eval_data))
                        evaluated_at = step
                    run.record(entry)
                if checkpoint_dir is not None and (step == total or (checkpoint_every and step % checkpoint_every == 0)):
                    self.save(checkpoint_dir)
                    saved_at = step
            # Already at `total` before the loop (e.g. resumed a finished run):
            # still report, and save unless the checkpoint just loaded is this state.
            if eval_data is not None and evaluated_at != self.step:
                run.record({"step": self.step, **self.evaluate(eval_data)})
            if checkpoint_dir is not None and self.step not in (saved_at, resumed_at):
                self.save(checkpoint_dir)
        finally:
            run.close()
        return run.entries


def _weight_norm(model):
    """L2 norm of all weights: finite exactly when every weight is (summed in float64)."""
    weights = flat_buffers(model)[0]
    return kernel("grad_norm", weights.dtype)(weights)


def _first_nonfinite(model, which):
    """Name of the first parameter (SPEC order) whose `which` ("data" or "grad") is not all finite."""
    for name, p in model.named_parameters():
        if not np.all(np.isfinite(getattr(p, which))):
            return name
    return None


def _truncate_history(path, step):
    """Drop history entries after `step`, so the entries of the run that
    starts at `step` follow on without duplicates."""
    if not os.path.isfile(path):
        return
    kept = []
    with open(path, "rb") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if isinstance(entry, dict) and entry.get("step", 0) <= step:
                kept.append(line if line.endswith(b"\n") else line + b"\n")
    atomic_write_bytes(path, b"".join(kept))


class _RunLog:
    """Running training metrics, the progress bar and the history entries."""

    def __init__(self, trainer, history_path, total):
        self.trainer, self.history_path = trainer, history_path
        self.entries = []
        self.loss_sum = self.tokens = self.seconds = 0.0
        self.count = 0
        self.last = {}
        self.started = time.perf_counter()
        shown = trainer.progress and trainer.world.is_main
        self.bar = tqdm(total=total, initial=trainer.step, disable=not shown, unit="step",
                        dynamic_ncols=True, desc="train")
        self.last_refresh = 0.0

    def add_step(self, metrics, seconds):
        self.loss_sum += metrics["loss"]
        self.count += 1
        self.tokens += metrics["tokens"]
        self.seconds += seconds
        self.last = metrics
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.last_refresh > 0.5:  # a postfix redraw per step would cost more than tiny steps
            self.last_refresh = now
            self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}",
                                 tok_s=f"{self.tokens / max(self.seconds, 1e-9):,.0f}")

    def train_entry(self):
        """The training metrics since the previous entry (then reset)."""
        entry = {"step": self.trainer.step, "loss": self.loss_sum / max(self.count, 1),
                 "lr": self.last.get("lr"), "tokens": int(self.tokens),
                 "tokens_per_s": self.tokens / max(self.seconds, 1e-9)}
        if self.last.get("grad_norm") is not None:
            entry["grad_norm"] = self.last["grad_norm"]
        self.loss_sum = self.tokens = self.seconds = 0.0
        self.count = 0
        return entry

    def record(self, entry):
        entry["elapsed_s"] = round(time.perf_counter() - self.started, 3)
        entry = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in entry.items()}
        self.entries.append(entry)
        self.trainer.history.append(entry)
        if "eval_loss" in entry and not self.bar.disable:
            shown = ", ".join(f"{k[5:]} {entry[k]:.4f}" for k in
                              ("eval_loss", "eval_token_accuracy", "eval_exact_match") if k in entry)
            tqdm.write(f"step {entry['step']}: eval {shown}", file=sys.stderr)
        if self.history_path is not None:
            with open(self.history_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    def close(self):
        self.bar.close()
