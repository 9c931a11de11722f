"""Training batches cut by a token budget, length-bucketed as fairseq and
Marian do: short pairs travel in big batches, long ones in small, with
little padding, and no batch ever holds more than `max_tokens` padded tokens.

A batch of B pairs costs B * S + B * T tokens, S its longest source (at
least 1) and T its longest target plus one (the bos/eos position): exactly
the sizes of make_batch's src and tgt_in arrays.

Each epoch sorts the pairs by (source length, target length) with ties
broken by a permutation drawn from default_rng([seed, epoch]), and shuffles
the order of the batches with the same generator. The sorted lengths are the
same every epoch, so the cuts are too: every epoch has the same number of
batches of the same shapes, but which pairs share a batch changes. Batch k
of a run is thus a pure function of (seed, k), which keeps resuming exact.
"""
import numpy as np

from fastformer.data.batch import make_batch


def example_costs(source_lengths, target_lengths):
    """Per pair: (padded source positions, target positions incl. bos/eos) as int64 arrays."""
    return (np.maximum(np.asarray(source_lengths, dtype=np.int64), 1),
            np.asarray(target_lengths, dtype=np.int64) + 1)


def check_count(name, value, optional=True):
    """ValueError naming `name` unless value is a positive integer (or None, when optional)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def cut_by_budget(s, t, max_tokens, max_batch=None, oversize="error"):
    """Greedy cuts of pairs already sorted by (s, t) -> int64 bounds (batch i is
    rows bounds[i]:bounds[i+1]): each batch as long as len * (max s + max t)
    stays within max_tokens (and len within max_batch). A single pair over the
    budget: ValueError when oversize == "error", a batch of its own when "alone"."""
    check_count("max_tokens", max_tokens, optional=False)
    check_count("max_batch", max_batch)
    s, t = np.asarray(s, dtype=np.int64), np.asarray(t, dtype=np.int64)
    if s.size == 0:
        return np.zeros(1, dtype=np.int64)
    longest = int((s + t).max())
    if oversize == "error" and longest > max_tokens:
        raise ValueError(f"max_tokens {max_tokens} is smaller than the longest kept example ({longest} tokens: "
                         f"its source plus its target with the bos/eos position)")
    # Work run by run (pairs of equal lengths), not pair by pair: a few Python steps per batch.
    starts = np.flatnonzero(np.r_[True, (s[1:] != s[:-1]) | (t[1:] != t[:-1])])
    counts = np.diff(np.r_[starts, len(s)])
    bounds, pos, rows, top_s, top_t = [0], 0, 0, 0, 0
    for run_s, run_t, left in zip(s[starts].tolist(), t[starts].tolist(), counts.tolist()):
        while left:
            new_s, new_t = max(top_s, run_s), max(top_t, run_t)
            fits = max_tokens // (new_s + new_t)
            if max_batch is not None:
                fits = min(fits, max_batch)
            if fits <= rows:
                if rows:  # full: close it, and try again in a new batch
                    bounds.append(pos)
                    rows, top_s, top_t = 0, 0, 0
                    continue
                fits = 1  # one pair over the budget (oversize == "alone")
            take = min(fits - rows, left)
            rows, pos, left = rows + take, pos + take, left - take
            top_s, top_t = new_s, new_t
    if rows:
        bounds.append(pos)
    return np.asarray(bounds, dtype=np.int64)


def _sort_key(s, t):
    return s * (int(t.max(initial=0)) + 1) + t


class TokenBudgetBatches:
    """Epoch-based training batches over pairs `indices` of `corpus` (a
    TokenizedCorpus, or anything with source(i), target(i), source_lengths and
    target_lengths), each within `max_tokens` padded tokens (and `max_batch`
    pairs when given). ValueError when one pair alone is over the budget.

    get_batch(step): the Batch of 0-based training step `step`, batch
    `step % batches_per_epoch` of epoch `step // batches_per_epoch`.
    batch_size: the most pairs any batch holds (the same every epoch).
    """

    def __init__(self, corpus, max_tokens, seed=0, indices=None, max_batch=None, pad_id=0, bos_id=1, eos_id=2):
        self.corpus, self.seed = corpus, int(seed)
        self.max_tokens, self.max_batch = max_tokens, max_batch
        self.indices = (np.arange(len(corpus), dtype=np.int64) if indices is None
                        else np.asarray(indices, dtype=np.int64))
        if self.indices.size == 0:
            raise ValueError("no examples to batch")
        self.special_ids = (pad_id, bos_id, eos_id)
        s, t = example_costs(corpus.source_lengths[self.indices], corpus.target_lengths[self.indices])
        self._key = _sort_key(s, t)
        order = np.argsort(self._key, kind="stable")
        self.bounds = cut_by_budget(s[order], t[order], max_tokens, max_batch)
        self.batches_per_epoch = len(self.bounds) - 1
        self.batch_size = int(np.diff(self.bounds).max())
        self._epoch, self._plan = None, None

    def epoch_plan(self, epoch):
        """(order, batch order): batch k of `epoch` is positions
        order[bounds[b]:bounds[b+1]] of `indices`, b = batch_order[k]."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        shuffled = rng.permutation(len(self.indices))
        order = shuffled[np.argsort(self._key[shuffled], kind="stable")]
        return order, rng.permutation(self.batches_per_epoch)

    def batch_indices(self, step):
        """The corpus indices of the pairs in training step `step`'s batch (in batch order)."""
        epoch, k = divmod(int(step), self.batches_per_epoch)
        if epoch != self._epoch:  # one plan per epoch, kept while the steps stay in it
            self._plan, self._epoch = self.epoch_plan(epoch), epoch
        order, batch_order = self._plan
        b = batch_order[k]
        return self.indices[order[self.bounds[b]:self.bounds[b + 1]]]

    def get_batch(self, step):
        """The Batch used at (0-based) training step `step`."""
        chosen = self.batch_indices(step)
        return make_batch([self.corpus.source(i) for i in chosen], [self.corpus.target(i) for i in chosen],
                          *self.special_ids)

    def __iter__(self):
        """One epoch's batches (epoch 0)."""
        return (self.get_batch(k) for k in range(self.batches_per_epoch))

    def __len__(self):
        return self.batches_per_epoch


def fixed_budget_batches(corpus, max_tokens, indices=None, pad_id=0, bos_id=1, eos_id=2):
    """Evaluation batches: pairs `indices` of `corpus` (default all) sorted by
    length and cut by `max_tokens`, a pair over the budget in a batch of its
    own (nothing is left out); a list of Batch."""
    indices = np.arange(len(corpus), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    s, t = example_costs(corpus.source_lengths[indices], corpus.target_lengths[indices])
    rank = np.argsort(_sort_key(s, t), kind="stable")
    bounds = cut_by_budget(s[rank], t[rank], max_tokens, oversize="alone")
    order = indices[rank]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        chosen = order[lo:hi]
        out.append(make_batch([corpus.source(i) for i in chosen], [corpus.target(i) for i in chosen],
                              pad_id, bos_id, eos_id))
    return out
