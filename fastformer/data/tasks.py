"""Built-in synthetic seq2seq tasks, generated on the fly from a seeded RNG.

Each task draws (source, target) strings. Training batch k comes from
default_rng([seed, TRAIN, k]) and the held-out set from default_rng([seed,
HELDOUT]): the streams never share a seed, and training draws that happen to
equal a held-out example are redrawn, so held-out accuracy measures
generalisation.
"""
import numbers

import numpy as np

from fastformer.data.batch import make_batch
from fastformer.data.bucketing import sorted_batches
from fastformer.data.vocab import Vocabulary

TRAIN, HELDOUT = 0, 1  # the second word of the RNG seed of each stream
DIGITS = "0123456789"


def _digits(rng, n):
    return "".join(DIGITS[i] for i in rng.integers(0, 10, size=n))


def _copy(rng, lo, hi):
    s = _digits(rng, rng.integers(lo, hi + 1))
    return s, s


def _reverse(rng, lo, hi):
    s = _digits(rng, rng.integers(lo, hi + 1))
    return s, s[::-1]


def _sort(rng, lo, hi):
    s = _digits(rng, rng.integers(lo, hi + 1))
    return s, "".join(sorted(s))


def _number(rng, lo, hi):
    """A number of lo..hi digits, no leading zero (except 0 itself)."""
    n = int(rng.integers(lo, hi + 1))
    first = int(rng.integers(1 if n > 1 else 0, 10))
    return str(first) + _digits(rng, n - 1)


def _addition(rng, lo, hi):
    a, b = _number(rng, lo, hi), _number(rng, lo, hi)
    return f"{a}+{b}", str(int(a) + int(b))


# name -> (generator(rng, min_len, max_len) -> (src, tgt), symbols, default (min_len, max_len),
#          (max source length, max target length) as functions of max_len)
TASKS = {
    "copy": (_copy, DIGITS, (3, 8), lambda n: (n, n)),
    "reverse": (_reverse, DIGITS, (3, 8), lambda n: (n, n)),
    "sort": (_sort, DIGITS, (3, 8), lambda n: (n, n)),
    # For addition, min_len/max_len count the digits of each operand.
    "addition": (_addition, DIGITS + "+", (1, 3), lambda n: (2 * n + 1, n + 1)),
}


class SyntheticTask:
    """A built-in task as a training stream and a fixed held-out set.

    name: "copy", "reverse", "sort" or "addition" ("123+45" -> "168");
    min_len/max_len: sequence length range (for addition: digits per operand).
    `get_batch(step)` is a pure function of (seed, step); there are no epochs
    (`batches_per_epoch` is None).
    """

    batches_per_epoch = None

    def __init__(self, name, batch_size=64, seed=0, min_len=None, max_len=None, heldout_size=256):
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
        self._generate, symbols, (default_lo, default_hi), self._limits = TASKS[name]
        lo = default_lo if min_len is None else min_len
        hi = default_hi if max_len is None else max_len
        for arg, value in [("min_len", lo), ("max_len", hi), ("batch_size", batch_size),
                           ("heldout_size", heldout_size)]:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        if lo > hi:
            raise ValueError(f"min_len={lo} must not exceed max_len={hi}")
        self.name, self.min_len, self.max_len = name, int(lo), int(hi)
        self.batch_size, self.seed, self.heldout_size = int(batch_size), int(seed), int(heldout_size)
        self.vocab = Vocabulary(symbols)
        self.heldout = self._draw_heldout()
        self._heldout_set = set(self.heldout)

    @property
    def max_source_len(self):
        return self._limits(self.max_len)[0]

    @property
    def max_target_len(self):
        """Longest target, without eos."""
        return self._limits(self.max_len)[1]

    def sample(self, rng):
        """One (source, target) pair of strings drawn from `rng`."""
        return self._generate(rng, self.min_len, self.max_len)

    def _draw_heldout(self):
        """heldout_size distinct pairs (fewer if the task has fewer; draws stop
        after a bounded number of tries so tiny tasks terminate)."""
        rng = np.random.default_rng([self.seed, HELDOUT])
        seen = {}
        for _ in range(20 * self.heldout_size):
            if len(seen) == self.heldout_size:
                break
            pair = self.sample(rng)
            seen.setdefault(pair, None)
        return list(seen)

    def train_pairs(self, step):
        """The batch_size string pairs of training step `step`, none of them held out."""
        rng = np.random.default_rng([self.seed, TRAIN, int(step)])
        pairs = []
        while len(pairs) < self.batch_size:
            pair = self.sample(rng)
            if pair not in self._heldout_set:
                pairs.append(pair)
        return pairs

    def _encode(self, pairs):
        return [(self.vocab.encode(s), self.vocab.encode(t)) for s, t in pairs]

    def get_batch(self, step):
        """The Batch of (0-based) training step `step`."""
        encoded = self._encode(self.train_pairs(step))
        return make_batch([s for s, _ in encoded], [t for _, t in encoded])

    def heldout_batches(self, batch_size=None):
        """The held-out set as a fixed list of Batch (sorted by length)."""
        return sorted_batches(self._encode(self.heldout), batch_size or self.batch_size)

    def config(self):
        """JSON-able description (for checkpoints): rebuild with SyntheticTask(**config)."""
        return {"name": self.name, "batch_size": self.batch_size, "seed": self.seed,
                "min_len": self.min_len, "max_len": self.max_len, "heldout_size": self.heldout_size}

    def __repr__(self):
        return "SyntheticTask(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"
