"""A small training run for the MPI tests: run it alone or under mpiexec.

Trains a tiny Transformer on the reverse task with dropout, label smoothing,
clipping and a schedule (everything that must agree across rank counts),
checkpointing every 4 steps. Every fourth batch is cut short (as the last
batch of a length bucket is), so its micro-batches are ragged and do not
share out evenly over the ranks. --die-rank/--die-at-step kill (SIGKILL) or
--raise-rank/--raise-at-step raise or --hang-rank/--hang-at-step sleep for
an hour in one rank when it asks for that step's batch, to test that the job
ends by itself.
"""
import argparse
import os
import signal
import time

import fastformer as ff
from fastformer import distributed
from fastformer.data import Batch, SyntheticTask
from fastformer.optim import AdamW, WarmupCosineSchedule
from fastformer.trainer import Trainer

SCHEDULE_STEPS = 8  # fixed, so a resumed run has the schedule of an uninterrupted one


class Stream:
    """The task's batches, every fourth one 5 examples short; optionally one
    rank fails (`how`: "die", "raise" or "hang") when it reaches `at_step`."""

    def __init__(self, task, rank=None, at_step=None, how=None):
        self.task, self.rank, self.at_step, self.how = task, rank, at_step, how
        self.batch_size, self.vocab, self.config = task.batch_size, task.vocab, task.config

    def get_batch(self, step):
        if step == self.at_step and distributed.rank() == self.rank:
            if self.how == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.how == "hang":
                time.sleep(3600)
            raise RuntimeError(f"rank {self.rank} fails at step {step} (as the test asked)")
        batch = self.task.get_batch(step)
        if step % 4 == 1:
            batch = Batch(*(a[:self.batch_size - 5] for a in batch))
        return batch


class FallingScores:
    """A validator (rank 0's) whose BLEU only falls after the first validation."""

    def validate(self, model):
        self.calls = getattr(self, "calls", 0) + 1
        return {"valid_loss": 1.0, "valid_bleu": 1.0 / self.calls, "valid_chrf": 0.0}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--steps", type=int, default=SCHEDULE_STEPS)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--micro-batch-size", type=int, default=2)
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--ema", type=float)
    p.add_argument("--valid-every", type=int)
    p.add_argument("--early-stopping", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--die-rank", type=int)
    p.add_argument("--die-at-step", type=int)
    p.add_argument("--raise-rank", type=int)
    p.add_argument("--raise-at-step", type=int)
    p.add_argument("--hang-rank", type=int)
    p.add_argument("--hang-at-step", type=int)
    args = p.parse_args()
    ff.set_num_threads(1)
    task = SyntheticTask("reverse", batch_size=args.batch_size, seed=3)
    data = Stream(task)
    if args.die_rank is not None:
        data = Stream(task, args.die_rank, args.die_at_step, "die")
    elif args.raise_rank is not None:
        data = Stream(task, args.raise_rank, args.raise_at_step, "raise")
    elif args.hang_rank is not None:
        data = Stream(task, args.hang_rank, args.hang_at_step, "hang")
    V = len(task.vocab)
    model = ff.Transformer(V, V, d_model=32, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                           dim_feedforward=48, dropout=0.1, max_len=12, seed=1)
    optimizer = AdamW(model, lr=3e-3, weight_decay=0.01)
    schedule = WarmupCosineSchedule(3e-3, 2, SCHEDULE_STEPS, min_lr=1e-4)
    trainer = Trainer(model, optimizer, schedule=schedule, clip_grad_norm=0.5, label_smoothing=0.1,
                      progress=False, log_every=1, micro_batch_size=args.micro_batch_size,
                      accum=args.accum, ema=args.ema)
    valid = FallingScores() if args.valid_every else None
    trainer.fit(data, steps=args.steps, checkpoint_dir=args.checkpoint, checkpoint_every=4, resume=args.resume,
                valid=valid, valid_every=args.valid_every, early_stopping=args.early_stopping)


if __name__ == "__main__":
    main()
