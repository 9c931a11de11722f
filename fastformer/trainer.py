"""The training loop: steps (with gradient accumulation), evaluation,
validation with early stopping, a moving average of the weights,
checkpoints (last and best), history and resume."""
import contextlib
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
from fastformer.ema import ExponentialMovingAverage
from fastformer.losses import LogitsBuffer, cross_entropy
from fastformer.optim.clip import clip_grad_norm as _clip_grad_norm
from fastformer.optim.clip import grad_norm as _grad_norm
from fastformer.validation import METRICS, check_metric, improves

HISTORY_FILE = "history.jsonl"
BEST_DIR = "best"  # checkpoint_dir/best: the best validated weights


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

    accum: batches per optimizer step (gradient accumulation): step k uses
    the data's batches k*accum ... k*accum + accum - 1, and its loss is the
    mean over all their target tokens, so the gradient is that of one batch
    of all their examples (up to float rounding: the batches' gradients are
    summed in order, see fastformer.data_parallel). Batches may differ in
    size (token-budget batches); with micro_batch_size, a source with a
    `batch_size` attribute must not give larger batches than that (it
    plans the micro-batches and checks they share out over the ranks).

    ema: a decay in (0, 1) to keep an exponential moving average of the
    weights (fastformer.ema; ema_warmup: TensorFlow's warm-up of the decay),
    updated after every step, used for validation and for the best
    checkpoint, saved with checkpoints (an ema-*.safetensors file).

    `step` counts the updates made so far; `fit(steps=n)` trains until step n.
    Every step depends only on (model, optimizer, schedule, data seed, step),
    so resuming from a checkpoint reproduces an uninterrupted run bit for bit.
    """

    def __init__(self, model, optimizer, schedule=None, clip_grad_norm=None, label_smoothing=0.0,
                 progress=True, log_every=10, max_decode_len=None, vocab=None, task=None,
                 micro_batch_size=None, world=None, accum=1, ema=None, ema_warmup=True):
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
        self.accum = _check_count("accum", accum, allow_none=False)
        self.ema = None if ema is None else ExponentialMovingAverage(model, ema, ema_warmup)
        self.world = distributed.init() if world is None else world
        self.data_parallel = None  # made for the first batch (see plan_micro_batches)
        self.step = 0
        self.history = []
        # Early stopping: the validation metric, its best score and step, validations
        # since then without improvement, and the step of the last validation.
        self.valid_state = {"metric": None, "best": None, "best_step": None, "bad_count": 0, "last_step": None}

    @property
    def ema_decay(self):
        return None if self.ema is None else self.ema.decay

    @property
    def bos_id(self):
        return self.vocab.bos_id if self.vocab is not None else BOS_ID

    @property
    def eos_id(self):
        return self.vocab.eos_id if self.vocab is not None else EOS_ID

    # ----- one step ---------------------------------------------------------------

    def train_step(self, batch):
        """One update from `batch` (a Batch, or a list of `accum` of them)
        -> {"loss", "lr", "grad_norm", "tokens"}.

        Raises NonFiniteLossError, before the optimizer step, when the loss or
        a gradient is NaN or infinite (naming the first such parameter), and
        after it if the step itself made a weight non-finite (naming it).
        """
        model, opt = self.model, self.optimizer
        if self.schedule is not None:
            opt.lr = float(self.schedule(self.step + 1))
        model.train()
        opt.zero_grad()
        batches = list(batch) if isinstance(batch, list) else [batch]
        if len(batches) != self.accum:
            raise ValueError(f"a step takes accum={self.accum} batches, got {len(batches)}")
        parallel = self.plan_micro_batches(len(batches[0]) if self.micro_batch_size is None else None)
        if parallel is not None:  # micro-batches (and ranks): the global gradient lands in model's grads
            loss = parallel.gradient(batches, self.step, self.label_smoothing)
            if not math.isfinite(loss):
                raise NonFiniteLossError(self._stop_message(f"the loss is {loss}"))
        else:
            loss = model.forward_backward(batch.src, batch.tgt_in, batch.tgt_out,  # no (B, T, V) logits
                                          src_key_padding_mask=batch.src_key_padding_mask,
                                          tgt_key_padding_mask=batch.tgt_key_padding_mask,
                                          label_smoothing=self.label_smoothing)
            if not math.isfinite(loss):
                raise NonFiniteLossError(self._stop_message(f"the loss is {loss}"))
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
        if self.ema is not None:
            self.ema.update()
        return {"loss": loss, "lr": opt.lr, "grad_norm": norm, "tokens": sum(b.num_tokens for b in batches)}

    def plan_micro_batches(self, batch_size):
        """The DataParallel for global batches of `batch_size` (None: of any
        size), or None when the whole batch is one gradient computation in
        one process."""
        if self.data_parallel is None and (self.micro_batch_size is not None or self.world.size > 1
                                           or self.accum > 1):
            micro = self.micro_batch_size
            if micro is None and self.world.size > 1:
                if batch_size is None or batch_size % self.world.size:
                    raise ValueError(f"the global batch size {batch_size} does not divide over "
                                     f"{self.world.size} ranks: give micro_batch_size")
                micro = batch_size // self.world.size
            # micro None (accumulation in one process): each batch is one micro-batch, of any size
            self.data_parallel = DataParallel(self.model, micro, batch_size, self.world, accum=self.accum)
        return self.data_parallel

    def step_batches(self, source, step):
        """The batch of step `step` (0-based), or its `accum` batches: a pure function of the step."""
        if self.accum == 1:
            return source.get_batch(step)
        return [source.get_batch(step * self.accum + j) for j in range(self.accum)]

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
        buffer = LogitsBuffer()  # one logits array for all the batches, freed after
        loss_sum = correct = tokens = exact = examples = 0
        try:
            for batch in batches:
                logits = buffer.forward(model, batch)
                valid = batch.tgt_out != IGNORE_INDEX
                correct += int((logits.argmax(axis=-1) == batch.tgt_out)[valid].sum())
                loss, _ = cross_entropy(logits, batch.tgt_out, out=logits)  # the gradient is not needed
                n = int(valid.sum())
                loss_sum += loss * n
                tokens += n
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
                 "clip_grad_norm": self.clip_grad_norm, "micro_batch_size": micro, "accum": self.accum,
                 "ema": None if self.ema is None else {"decay": self.ema.decay, "warmup": self.ema.warmup,
                                                       "updates": self.ema.updates},
                 "validation": dict(self.valid_state)}
        schedule = self.schedule if hasattr(self.schedule, "config") else None
        return save_checkpoint(directory, self.model, self.optimizer, step=self.step, schedule=schedule,
                               trainer_state=state, vocab=self.vocab, task=self.task,
                               ema_state=None if self.ema is None else self.ema.state_dict())

    def save_best(self, directory, metrics):
        """Write the validated weights (the moving average when `ema` is on) as a
        model-only checkpoint into `directory` (rank 0 only), atomically; its
        trainer state holds the step and the validation metrics."""
        if not self.world.is_main:
            return None
        state = {"step": self.step, "validation": dict(metrics), "weights": "ema" if self.ema else "training"}
        with self._validated_weights():
            return save_checkpoint(directory, self.model, None, step=self.step, trainer_state=state,
                                   vocab=self.vocab, task=self.task)

    def _validated_weights(self):
        """A context in which the model holds the weights to validate."""
        return self.ema.swapped() if self.ema is not None else contextlib.nullcontext()

    def _start_data_parallel(self, source, total):
        """Plan the micro-batches (refusing a batch that does not divide) and,
        on several ranks, check that every rank starts the same job."""
        if self.micro_batch_size is None and self.world.size == 1:
            return  # accumulation alone: whole batches, nothing to plan
        first = source.get_batch(self.step * self.accum)
        # A source without a fixed batch_size (token-budget batches) has batches of any size.
        batch_size = getattr(source, "batch_size", None)
        if batch_size is None and self.micro_batch_size is None:
            batch_size = len(first)
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
        state = ckpt.manifest.get("trainer") or {}
        accum = state.get("accum", 1)
        if accum != self.accum:
            raise ValueError(f"{directory}: the checkpoint was trained with accum={accum}, this trainer has "
                             f"accum={self.accum} (the steps would take other batches)")
        ema = state.get("ema")
        ours = None if self.ema is None else {"decay": self.ema.decay, "warmup": self.ema.warmup}
        theirs = None if not isinstance(ema, dict) else {"decay": ema.get("decay"), "warmup": ema.get("warmup")}
        if theirs != ours:
            raise ValueError(f"{directory}: the checkpoint was trained with ema {theirs}, this trainer has "
                             f"ema {ours} (the moving average would not continue the same run)")
        if self.ema is not None:
            if ckpt.ema_state is None:
                raise ValueError(f"{directory}: the manifest names no EMA weights file to resume the average from")
            self.ema.check_state_dict(ckpt.ema_state, directory)
            updates = ema.get("updates")
            if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
                raise ValueError(f"{directory}: field 'trainer.ema.updates' must be a non-negative integer, "
                                 f"got {updates!r}")
        valid_state = _checked_valid_state(state.get("validation"), directory)
        load_checkpoint(ckpt, self.model, self.optimizer)
        if self.ema is not None:
            self.ema.load_state_dict(ckpt.ema_state, ema["updates"], directory)
        self.valid_state = valid_state
        self.step = int(ckpt.step)
        return ckpt

    # ----- the loop ---------------------------------------------------------------

    def fit(self, train_data, steps=None, epochs=None, eval_data=None, eval_every=None,
            checkpoint_dir=None, checkpoint_every=None, resume=False, valid=None, valid_every=None,
            valid_metric="bleu", early_stopping=None):
        """Train until `steps` updates in all (or `epochs` passes over an
        epoch-based dataset; with accum, the steps that cover them) -> the
        history: a list of metric dicts.

        train_data: an object with get_batch(step) (a SyntheticTask,
        TextPairsData, BucketedBatches) or a list of Batch. eval_data: see
        `evaluate`; evaluated every `eval_every` steps and at the end.
        checkpoint_dir: saved every `checkpoint_every` steps and at the end;
        each history entry is appended to checkpoint_dir/history.jsonl.
        resume: continue from checkpoint_dir's checkpoint when there is one.

        valid: a fastformer.validation.Validator (or any object with
        validate(model) -> {"valid_loss", "valid_bleu", "valid_chrf", ...}),
        run on the validated weights (the moving average with `ema`) every
        `valid_every` steps and at the end; valid_metric: "bleu", "chrf"
        (higher is better) or "loss" (lower is better) decides the best
        validation, whose weights are written to checkpoint_dir/best;
        early_stopping: stop after this many validations in a row without
        a strictly better valid_metric. The best score, its step and the
        count are trainer state, saved with the checkpoint (a run resumed
        after it stopped early trains no further). As the end of a fit is
        validated, fit(steps=n) then a resumed fit(steps=m) is bitwise one
        fit(steps=m) when n is a multiple of valid_every; otherwise the
        validation at step n is one more, and counts for early stopping.

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
            total = -(-_check_count("epochs", epochs) * per_epoch // self.accum)
        eval_every = _check_count("eval_every", eval_every)
        checkpoint_every = _check_count("checkpoint_every", checkpoint_every)
        valid_every = _check_count("valid_every", valid_every)
        early_stopping = _check_count("early_stopping", early_stopping)
        check_metric(valid_metric)
        if valid is not None and not callable(getattr(valid, "validate", None)):
            raise TypeError(f"valid must have validate(model) (a fastformer.validation.Validator), "
                            f"got {type(valid).__name__}")
        if valid is None and (valid_every is not None or early_stopping is not None):
            raise ValueError("valid_every and early_stopping need valid= (a Validator)")
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
        if valid is not None:
            self._start_validation(valid_metric)
        if self.ema is not None and self.ema.updates == 0:
            self.ema.reset()  # the average starts from the weights training starts from
        stopped = self._stopped_early(early_stopping)
        if self.step < total and not stopped:
            self._start_data_parallel(source, total)

        run = _RunLog(self, history_path, total)
        saved_at = evaluated_at = None
        try:
            while self.step < total and not stopped:
                batch = self.step_batches(source, self.step)
                start = time.perf_counter()
                try:
                    metrics = self.train_step(batch)
                except NonFiniteLossError as exc:
                    run.record({"step": self.step + 1, "error": str(exc)})
                    raise
                run.add_step(metrics, time.perf_counter() - start)
                step = self.step
                do_eval = eval_data is not None and (step == total or (eval_every and step % eval_every == 0))
                do_valid = valid is not None and (step == total or (valid_every and step % valid_every == 0))
                if do_eval or do_valid or step == total or step % self.log_every == 0:
                    entry = run.train_entry()
                    if do_eval:
                        entry.update(self.evaluate(eval_data))
                        evaluated_at = step
                    if do_valid:
                        entry.update(self._validate(valid, checkpoint_dir, run))
                        stopped = self._stopped_early(early_stopping)
                        if stopped:
                            entry["early_stopped"] = True
                            run.note(f"early stopping at step {step}: {early_stopping} validations without a "
                                     f"better {self.valid_state['metric']} than {self.valid_state['best']:.4f} "
                                     f"(step {self.valid_state['best_step']})")
                    run.record(entry)
                if checkpoint_dir is not None and (step == total or stopped
                                                   or (checkpoint_every and step % checkpoint_every == 0)):
                    self.save(checkpoint_dir)
                    saved_at = step
            # Already at `total` before the loop (e.g. resumed a finished run):
            # still report, and save unless the checkpoint just loaded is this state.
            if eval_data is not None and evaluated_at != self.step:
                run.record({"step": self.step, **self.evaluate(eval_data)})
            if valid is not None and not stopped and self.valid_state["last_step"] != self.step:
                entry = {"step": self.step, **self._validate(valid, checkpoint_dir, run)}
                if self._stopped_early(early_stopping):
                    entry["early_stopped"] = True
                run.record(entry)
            if checkpoint_dir is not None and self.step not in (saved_at, resumed_at):
                self.save(checkpoint_dir)
        finally:
            run.close()
        return run.entries

    # ----- validation and early stopping -------------------------------------------

    def _start_validation(self, metric):
        """Set the metric of the early-stopping state (ValueError if a resumed run's differs)."""
        state = self.valid_state
        if state["metric"] is None:
            state["metric"] = metric
        elif state["metric"] != metric:
            raise ValueError(f"this run's best validation was judged by valid_metric={state['metric']!r}; "
                             f"resuming it with valid_metric={metric!r} would compare other scores")

    def _stopped_early(self, patience):
        return patience is not None and self.valid_state["bad_count"] >= patience

    def _validate(self, valid, checkpoint_dir, run):
        """Validate the validated weights (rank 0); update the early-stopping
        state (on every rank alike) and write checkpoint_dir/best on improvement.
        Returns the metrics with "valid_best" and "valid_best_step"."""
        state = self.valid_state
        metrics = None
        if self.world.is_main:
            with self._validated_weights():
                metrics = dict(valid.validate(self.model))
        if self.world.size > 1:
            metrics = self.world.comm.bcast(metrics, root=0)  # every rank decides to stop alike
        key = METRICS[state["metric"]][0]
        if key not in metrics:
            raise ValueError(f"valid.validate returned no {key!r} for valid_metric={state['metric']!r}")
        score = float(metrics[key])
        state["last_step"] = self.step
        if improves(state["metric"], score, state["best"]):
            state.update(best=score, best_step=self.step, bad_count=0)
            if checkpoint_dir is not None:
                self.save_best(os.path.join(checkpoint_dir, BEST_DIR), metrics)
        else:
            state["bad_count"] += 1
        metrics.update(valid_best=state["best"], valid_best_step=state["best_step"])
        run.show_validation(self.step, metrics, state["metric"])
        return metrics


def _checked_valid_state(state, where):
    """The early-stopping state saved in a checkpoint's trainer state (a fresh
    one when it has none), or ValueError naming the bad field."""
    fresh = {"metric": None, "best": None, "best_step": None, "bad_count": 0, "last_step": None}
    if state is None:
        return fresh
    if not isinstance(state, dict) or set(state) != set(fresh):
        raise ValueError(f"{where}: field 'trainer.validation' must be an object with the keys {sorted(fresh)}, "
                         f"got {state!r}")
    if state["metric"] is not None and state["metric"] not in METRICS:
        raise ValueError(f"{where}: field 'trainer.validation.metric' must be one of {sorted(METRICS)} or null, "
                         f"got {state['metric']!r}")
    best = state["best"]
    if best is not None and (isinstance(best, bool) or not isinstance(best, numbers.Real) or not math.isfinite(best)):
        raise ValueError(f"{where}: field 'trainer.validation.best' must be a finite number or null, got {best!r}")
    for key in ("best_step", "bad_count", "last_step"):
        value = state[key]
        if value is None and key != "bad_count":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where}: field 'trainer.validation.{key}' must be a non-negative integer"
                             f"{'' if key == 'bad_count' else ' or null'}, got {value!r}")
    return dict(state)


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
        self.valid_shown = {}  # the last validation's score, shown in the progress bar
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
                                 tok_s=f"{self.tokens / max(self.seconds, 1e-9):,.0f}", **self.valid_shown)

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

    def show_validation(self, step, metrics, metric):
        """One line per validation above the bar, and its score in the bar."""
        self.valid_shown = {f"valid_{metric}": f"{metrics[METRICS[metric][0]]:.4g}"}
        if not self.bar.disable:
            shown = ", ".join(f"{k[6:]} {metrics[k]:.4f}" for k in ("valid_loss", "valid_bleu", "valid_chrf")
                              if k in metrics)
            best = metrics["valid_best"]
            tqdm.write(f"step {step}: valid {shown} (best {metric} {best:.4f} at step {metrics['valid_best_step']})",
                       file=sys.stderr)

    def note(self, text):
        if not self.bar.disable:
            tqdm.write(text, file=sys.stderr)

    def close(self):
        self.bar.close()
