"""Batches of similar length over a fixed list of encoded pairs, reshuffled
each epoch from (seed, epoch) alone, so batch k of any run is the same."""
import numpy as np

from fastformer.data.batch import make_batch

# How many batches' worth of examples are sorted by length together: large
# enough that batches have little padding, small enough that their
# composition still changes from epoch to epoch.
BUCKET_BATCHES = 50


class BucketedBatches:
    """An epoch-based batch source over `pairs` (a list of (source ids, target ids)).

    Each epoch: shuffle the examples with default_rng([seed, epoch]), sort
    each window of `batch_size * BUCKET_BATCHES` examples by length, cut it
    into batches, and shuffle the batch order. `get_batch(step)` is batch
    `step % batches_per_epoch` of epoch `step // batches_per_epoch`: a pure
    function of (seed, step), which is what makes resuming exact.
    """

    def __init__(self, pairs, batch_size, seed=0, pad_id=0, bos_id=1, eos_id=2):
        if not pairs:
            raise ValueError("no examples to batch")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.pairs = list(pairs)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.special_ids = (pad_id, bos_id, eos_id)
        window = self.batch_size * BUCKET_BATCHES
        n = len(self.pairs)
        # Every window but the last is full, so the count is the same each epoch.
        self.batches_per_epoch = sum(-(-min(window, n - start) // self.batch_size)
                                     for start in range(0, n, window))
        self._epoch, self._plan = None, None

    def epoch_plan(self, epoch):
        """The epoch's batches as a list of index arrays into `pairs`."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.pairs))
        lengths = np.array([len(s) + len(t) for s, t in self.pairs])
        window = self.batch_size * BUCKET_BATCHES
        batches = []
        for start in range(0, len(order), window):
            chunk = order[start:start + window]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def get_batch(self, step):
        """The Batch used at (0-based) training step `step`."""
        epoch, index = divmod(int(step), self.batches_per_epoch)
        if epoch != self._epoch:  # one plan per epoch, cached
            self._epoch, self._plan = epoch, self.epoch_plan(epoch)
        chosen = [self.pairs[i] for i in self._plan[index]]
        return make_batch([s for s, _ in chosen], [t for _, t in chosen], *self.special_ids)

    def __iter__(self):
        """One epoch's batches (epoch 0), e.g. for evaluation."""
        return (self.get_batch(k) for k in range(self.batches_per_epoch))

    def __len__(self):
        return self.batches_per_epoch


def sorted_batches(pairs, batch_size, pad_id=0, bos_id=1, eos_id=2):
    """Fixed batches for evaluation: `pairs` sorted by length (stable), cut
    into batches of `batch_size`; a list of Batch."""
    if not pairs:
        raise ValueError("no examples to batch")
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    out = []
    for start in range(0, len(order), batch_size):
        chosen = [pairs[i] for i in order[start:start + batch_size]]
        out.append(make_batch([s for s, _ in chosen], [t for _, t in chosen], pad_id, bos_id, eos_id))
    return out
