"""Data-parallel gradients: a global batch cut into micro-batches, spread over
MPI ranks, and reduced in an order that does not depend on the rank count.

Micro-batch m of a global batch is rows [m*u, (m+1)*u) (u = micro-batch
size), trimmed to its own longest source and target. With gradient
accumulation a step has several global batches; their micro-batches are
numbered on, batch after batch, and without u each batch is one micro-batch.
Each micro-batch's gradient is computed alone, into a zeroed gradient buffer,
with the loss normalised by the target tokens of the whole step and dropout
keyed by rng_step + m (rng_step: the model's dropout counter at the start of
the step, which then advances by the step's micro-batch count, as it
advances by one per training forward without micro-batches). The step's gradient is then the left fold
g_0 + g_1 + ... + g_{M-1} in float32, element by element, whatever the number
of ranks:

- alone, the micro-batches run one after another and are added to a running
  sum as they finish;
- with R ranks, rank r computes a contiguous block of micro-batches and
  sends the slice of each one's gradient that belongs to parameter shard s
  to rank s (MPI point-to-point: no MPI_Allreduce, whose order MPI leaves
  open); rank s folds its shard over all M micro-batches in index order;
  an Allgatherv gives every rank the whole gradient.

Every rank then clips and steps the same gradient, so weights, optimizer
state and losses are bitwise the same for any rank (and thread) count.
"""
import hashlib
import json
import os
import sys
import time

import numpy as np

from fastformer._kernels import flat_buffers
from fastformer._runtime import build_info
from fastformer._version import __version__
from fastformer.checkpoint import model_config
from fastformer.data.batch import IGNORE_INDEX, Batch

_SHARD_ALIGN = 16  # floats: shard boundaries on 64-byte lines
# A rank that dies ends the job through mpiexec; one that hangs is caught by
# this deadline on every wait (long enough for rank 0's evaluations and saves).
DEFAULT_RANK_TIMEOUT_S = 1800.0


def check_batch_split(batch_size, micro_batch_size, world_size, accum=1):
    """The number of micro-batches of a global batch; ValueError, saying what
    would divide, unless batch_size is a multiple of micro_batch_size and the
    micro-batches of a step (`accum` batches) share out evenly over world_size ranks."""
    if batch_size % micro_batch_size:
        fits = [d for d in range(1, batch_size + 1) if batch_size % d == 0]
        raise ValueError(f"the global batch size {batch_size} is not a multiple of the micro-batch size "
                         f"{micro_batch_size}: use a micro-batch size that divides it ({_listed(fits)}) or "
                         f"a batch size that is a multiple of {micro_batch_size}")
    micro = batch_size // micro_batch_size
    if accum > 1 and (micro * accum) % world_size:
        raise ValueError(f"{micro * accum} micro-batches per step ({accum} batches of {micro} micro-batches of "
                         f"{micro_batch_size}) do not share out evenly over {world_size} ranks: use a rank count "
                         f"that divides {micro * accum}, or another batch size, micro-batch size or accumulation")
    if accum == 1 and micro % world_size:
        ranks = [d for d in range(1, micro + 1) if micro % d == 0]
        raise ValueError(f"{micro} micro-batches of {micro_batch_size} (batch size {batch_size}) do not share "
                         f"out evenly over {world_size} ranks: use a rank count that divides {micro} "
                         f"({_listed(ranks)}) or a batch size that is a multiple of "
                         f"{micro_batch_size * world_size} (micro-batch size x ranks)")
    return micro


def _listed(values, limit=12):
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")


def micro_batch(batch, start, stop):
    """Rows [start, stop) of `batch`, trimmed to their own longest source and
    target (exactly the Batch make_batch would build from those examples)."""
    src_len = max(1, int((~batch.src_key_padding_mask[start:stop]).sum(axis=1).max()))
    tgt_len = int((~batch.tgt_key_padding_mask[start:stop]).sum(axis=1).max())
    return Batch(batch.src[start:stop, :src_len], batch.tgt_in[start:stop, :tgt_len],
                 batch.tgt_out[start:stop, :tgt_len], batch.src_key_padding_mask[start:stop, :src_len],
                 batch.tgt_key_padding_mask[start:stop, :tgt_len])


def shard_bounds(size, parts):
    """parts + 1 offsets cutting range(size) into near-equal contiguous shards."""
    cuts = [min(size, round(size * i / parts / _SHARD_ALIGN) * _SHARD_ALIGN) for i in range(parts)]
    return cuts + [size]


def block_bounds(count, parts):
    """parts + 1 offsets giving rank r micro-batches [b[r], b[r+1])."""
    return [count * r // parts for r in range(parts + 1)]


class DataParallel:
    """The gradient of a global batch, micro-batch by micro-batch, over `world`.

    model: a fastformer model (flat gradient buffer); micro_batch_size: rows
    per micro-batch, or None: each batch is one micro-batch (one process
    only); batch_size: the global batch size (a later batch may be smaller,
    e.g. the last of a bucket, never larger), or None for batches of any
    size (token-budget batches: no check that they share out evenly);
    world: a fastformer.distributed.World; accum: batches per step
    (gradient accumulation).

    `gradient(batches, step)` (one Batch, or a list of `accum` at most)
    leaves the step's gradient in the model's flat gradient buffer on every
    rank and returns the step's loss (per target token). `stats` counts
    bytes sent, seconds computing and seconds waiting for communication. A rank that waits more than `timeout` seconds
    (default FASTFORMER_RANK_TIMEOUT or 1800) for another aborts the job.
    """

    def __init__(self, model, micro_batch_size, batch_size, world, timeout=None, accum=1):
        self.model, self.world = model, world
        if timeout is None:
            timeout = float(os.environ.get("FASTFORMER_RANK_TIMEOUT", DEFAULT_RANK_TIMEOUT_S))
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = timeout
        self.accum = int(accum)
        if micro_batch_size is None:  # whole batches, of whatever size
            if world.size > 1:
                raise ValueError("several ranks need a micro_batch_size")
            self.micro_batch_size = self.batch_size = None
            planned = self.accum
        else:
            self.micro_batch_size = int(micro_batch_size)
            self.batch_size = None if batch_size is None else int(batch_size)
            planned = self.accum * (1 if batch_size is None else
                                    check_batch_split(self.batch_size, self.micro_batch_size, world.size, self.accum))
        _, self.grads = flat_buffers(model)
        # bytes_sent: payload this rank sent; received_bytes: shard slices it received, of which
        # received_early_bytes had arrived while it was still computing (overlapped);
        # compute_s: forward + backward; reduce_s: after compute, to the gradient being complete.
        self.stats = {"steps": 0, "bytes_sent": 0, "received_bytes": 0, "received_early_bytes": 0,
                      "gathered_bytes": 0, "compute_s": 0.0, "reduce_s": 0.0}
        # Micro-batches of a full step, as planned; a step may have fewer (a short batch), or
        # more with batches of any size (batch_size None): the buffers then grow.
        self.max_micro = planned
        self.capacity = 0
        if world.size > 1:
            from mpi4py import MPI

            self._MPI = MPI
            self.shards = shard_bounds(self.grads.size, world.size)
            counts = [self.shards[s + 1] - self.shards[s] for s in range(world.size)]
            self._gather_spec = [self.grads, counts, self.shards[:-1], MPI.FLOAT if self.grads.dtype == np.float32
                                 else MPI.DOUBLE]
        self._allocate(planned)

    def _allocate(self, count):
        """Buffers for steps of up to `count` micro-batches (grown when a step has more)."""
        self.capacity = count
        size, ranks = self.grads.size, self.world.size
        # Per-micro-batch (loss x tokens); every rank ends with all of them.
        self.loss_sums = np.zeros(count, dtype=np.float64)
        if ranks == 1:
            self.running = np.empty_like(self.grads) if count > 1 else None
            return
        lo, hi = self.shards[self.world.rank], self.shards[self.world.rank + 1]
        per_rank = -(-count // ranks)
        self.stash = np.empty((per_rank, size), dtype=self.grads.dtype)  # this rank's micro-batch gradients
        self.incoming = np.empty((count, hi - lo), dtype=self.grads.dtype)  # others', my shard

    # ----- one global batch -------------------------------------------------------

    def gradient(self, batches, step, label_smoothing=0.0):
        """Gradient of `batches` (a Batch, or a list of up to `accum`; training
        step `step`, 0-based) into the model's gradient buffer -> the step's
        loss per target token."""
        batches = list(batches) if isinstance(batches, list) else [batches]
        if not 1 <= len(batches) <= self.accum:
            raise ValueError(f"a step takes 1 to {self.accum} batches, got {len(batches)}")
        units = []  # (batch, first row, end row) of each micro-batch, in step order
        for batch in batches:
            rows = len(batch)
            if self.micro_batch_size is None:
                units.append((batch, 0, rows))
                continue
            if self.batch_size is not None and rows > self.batch_size:
                raise ValueError(f"a batch of {rows} examples is larger than the global batch size "
                                 f"{self.batch_size} the micro-batches were planned for")
            u = self.micro_batch_size
            units.extend((batch, start, min(start + u, rows)) for start in range(0, rows, u))
        count = len(units)
        tokens = sum(int((batch.tgt_out != IGNORE_INDEX).sum()) for batch in batches)
        if tokens == 0:
            raise ValueError(f"the batches of step {step + 1} hold no target tokens")
        if count > self.capacity:
            self._allocate(count)
        self.rng_base = self.model.rng_step
        self._single = count == 1
        if self.world.size == 1:
            self._gradient_alone(units, step, count, tokens, label_smoothing)
        else:
            self._gradient_shared(units, step, count, tokens, label_smoothing)
        self.model.rng_step = self.rng_base + count
        self.stats["steps"] += 1
        if count == 1:
            return float(self.loss_sums[0])  # the whole step in one: cross_entropy's own mean
        total = 0.0
        for m in range(count):  # in micro-batch order: the same float64 sum on every rank
            total += self.loss_sums[m]
        return total / tokens

    def _micro_gradient(self, units, step, m, tokens, label_smoothing):
        """Micro-batch m's gradient into the (zeroed) gradient buffer; records
        loss x tokens (the mean loss itself when it is the step's only micro-batch)."""
        start = time.perf_counter()
        batch, first, end = units[m]
        part = batch if self.micro_batch_size is None else micro_batch(batch, first, end)
        model = self.model
        model.rng_step = self.rng_base + m  # dropout keyed by the micro-batch, never the rank
        n = int((part.tgt_out != IGNORE_INDEX).sum())
        normalizer = None if n == tokens else tokens  # the step's mean: this micro-batch's share of it
        loss = model.forward_backward(part.src, part.tgt_in, part.tgt_out,
                                      src_key_padding_mask=part.src_key_padding_mask,
                                      tgt_key_padding_mask=part.tgt_key_padding_mask,
                                      label_smoothing=label_smoothing, normalizer=normalizer)
        self.loss_sums[m] = loss if self._single else loss * (normalizer or n)  # the sum of its losses
        self.stats["compute_s"] += time.perf_counter() - start

    def _gradient_alone(self, units, step, count, tokens, label_smoothing):
        grads, running = self.grads, self.running
        for m in range(count):
            if m:
                grads.fill(0)
            self._micro_gradient(units, step, m, tokens, label_smoothing)
            if count == 1:
                return
            if m == 0:
                np.copyto(running, grads)
            elif m < count - 1:
                np.add(running, grads, out=running)
            else:
                np.add(running, grads, out=grads)

    def _gradient_shared(self, units, step, count, tokens, label_smoothing):
        MPI, comm, me, ranks = self._MPI, self.world.comm, self.world.rank, self.world.size
        blocks = block_bounds(count, ranks)
        first, last = blocks[me], blocks[me + 1]
        shards, grads, stash, incoming = self.shards, self.grads, self.stash, self.incoming
        owner = np.searchsorted(blocks, np.arange(count), side="right") - 1
        receives = {m: comm.Irecv(incoming[m], source=int(owner[m]), tag=m)
                    for m in range(count) if not first <= m < last}
        sends = []
        for j, m in enumerate(range(first, last)):
            if j:
                grads.fill(0)
            self._micro_gradient(units, step, m, tokens, label_smoothing)
            np.copyto(stash[j], grads)
            for s in range(ranks):
                if s != me:
                    piece = stash[j, shards[s]:shards[s + 1]]
                    sends.append(comm.Isend(piece, dest=s, tag=m))
                    self.stats["bytes_sent"] += piece.nbytes
            MPI.Request.Testall(sends + list(receives.values()))  # let MPI move data between micro-batches
        start = time.perf_counter()
        lo, hi = shards[me], shards[me + 1]
        mine = grads[lo:hi]
        for m, request in receives.items():
            self.stats["received_bytes"] += incoming[m].nbytes
            if request.Test():
                self.stats["received_early_bytes"] += incoming[m].nbytes
        for m in range(count):  # fold this rank's shard in micro-batch order
            if first <= m < last:
                part = stash[m - first, lo:hi]
            else:
                self._wait([receives[m]], f"rank {owner[m]} (micro-batch {m} of step {step + 1})")
                part = incoming[m]
            if m == 0:
                np.copyto(mine, part)
            else:
                np.add(mine, part, out=mine)
        self._wait(sends, f"the ranks receiving this rank's gradients (step {step + 1})")
        counts = [blocks[r + 1] - blocks[r] for r in range(ranks)]
        self._wait([comm.Iallgatherv(MPI.IN_PLACE, self._gather_spec),
                    comm.Iallgatherv(MPI.IN_PLACE, [self.loss_sums, counts, blocks[:-1], MPI.DOUBLE])],
                   f"the other ranks' gradient shards (step {step + 1})")
        self.stats["bytes_sent"] += (hi - lo) * grads.itemsize * (ranks - 1) + (last - first) * 8 * (ranks - 1)
        self.stats["gathered_bytes"] += (grads.size - (hi - lo)) * grads.itemsize
        self.stats["reduce_s"] += time.perf_counter() - start

    def _wait(self, requests, waiting_for):
        """Waitall with a deadline: past `timeout` seconds the job is aborted."""
        MPI = self._MPI
        deadline = time.monotonic() + self.timeout
        while not MPI.Request.Testall(requests):
            if time.monotonic() > deadline:
                print(f"fastformer: rank {self.world.rank} of {self.world.size} waited {self.timeout:g} s "
                      f"for {waiting_for}; aborting the job (FASTFORMER_RANK_TIMEOUT sets the limit)",
                      file=sys.stderr)
                self.world.abort(1)


# ----- the same job on every rank -------------------------------------------------------


def setup_digests(trainer, batch, total_steps, micro_batch_size):
    """{what: sha256} of everything that must be the same on every rank."""
    params, _ = flat_buffers(trainer.model)
    opt = trainer.optimizer
    schedule = trainer.schedule.config() if hasattr(trainer.schedule, "config") else repr(trainer.schedule)
    config = {"trainer": [trainer.step, total_steps, micro_batch_size, trainer.label_smoothing,
                          trainer.clip_grad_norm, getattr(trainer, "accum", 1), getattr(trainer, "ema_decay", None)],
              "model": [type(trainer.model).__name__, model_config(trainer.model)],
              "rng_step": trainer.model.rng_step, "optimizer": [type(opt).__name__, opt.hyperparameters(),
                                                                opt.steps],
              "schedule": schedule, "task": trainer.task}

    def digest(*parts):
        h = hashlib.sha256()
        for part in parts:
            h.update(part if isinstance(part, (bytes, memoryview)) else
                     json.dumps(part, sort_keys=True, default=repr).encode())
        return h.hexdigest()

    state = [np.ascontiguousarray(buf).data for buf in opt.state.values()]
    build = build_info()
    return {"fastformer version": digest(__version__, build["compiler"], build["openmp"]),
            # Kernels of different instruction sets sum in different orders.
            "SIMD level (set FASTFORMER_SIMD alike on every node)": digest(build["simd"]),
            "configuration": digest(config),
            "parameters and optimizer state": digest(params.data, *state),
            "data": digest(*(np.ascontiguousarray(a).data for a in batch))}


def check_same_setup(world, digests):
    """ValueError (on every rank alike) unless every rank has the same digests."""
    if world.size == 1:
        return
    everyone = world.comm.allgather(digests)
    differ = [what for what in digests if len({d.get(what) for d in everyone}) > 1]
    if differ:
        odd = sorted({r for r, d in enumerate(everyone) for what in differ if d.get(what) != everyone[0].get(what)})
        raise ValueError(f"the {world.size} ranks were not started alike: {', '.join(differ)} "
                         f"{'differs' if len(differ) == 1 else 'differ'} "
                         f"between rank 0 and rank(s) {', '.join(map(str, odd))} (start every rank with the "
                         f"same fastformer, arguments, data and checkpoint)")
