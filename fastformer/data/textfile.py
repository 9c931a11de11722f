"""User data: a UTF-8 text file of `source<TAB>target` lines."""
import os

import numpy as np

from fastformer.data.bucketing import BucketedBatches, sorted_batches
from fastformer.data.vocab import Vocabulary


class DataFileError(ValueError):
    """A data file that cannot be read or parsed; the message names the file and line."""


def read_pairs(path):
    """-> list of (source, target) strings, one per non-blank line.

    Each line must be `source<TAB>target` with both sides non-empty; a
    trailing newline (or CRLF) is dropped, blank lines are skipped. Raises
    DataFileError naming the file (and line) for an unreadable file, bad
    UTF-8, a malformed line, or a file without any pair.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read the data file ({exc.strerror or exc})") from None
    pairs = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise DataFileError(f"{path}, line {number}: not valid UTF-8 text") from None
        text = text[:-1] if text.endswith("\r") else text
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != 2:
            found = "no tab" if len(fields) == 1 else f"{len(fields) - 1} tabs"
            raise DataFileError(f"{path}, line {number}: expected 'source<TAB>target', found {found}")
        if not fields[0] or not fields[1]:
            side = "source" if not fields[0] else "target"
            raise DataFileError(f"{path}, line {number}: the {side} is empty")
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise DataFileError(f"{path}: the data file holds no 'source<TAB>target' lines")
    return pairs


class TextPairsData:
    """Pairs from a file, split into training batches and a held-out set.

    The held-out examples are chosen with default_rng(seed) (a fixed
    `heldout_fraction`, at least 1 when there are 2 or more pairs);
    training batches are bucketed by length and reshuffled per epoch
    (`BucketedBatches`). The vocabulary is built from all pairs unless given
    (e.g. the one saved with a checkpoint).
    """

    def __init__(self, pairs, batch_size=64, seed=0, heldout_fraction=0.05, vocab=None, source=None):
        if not 0.0 <= heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction!r}")
        self.source, self.seed, self.heldout_fraction = source, int(seed), float(heldout_fraction)
        self.vocab = vocab if vocab is not None else Vocabulary.from_texts(s + t for s, t in pairs)
        n_heldout = int(round(len(pairs) * heldout_fraction))
        if heldout_fraction > 0 and len(pairs) > 1:
            n_heldout = max(1, n_heldout)
        order = np.random.default_rng(self.seed).permutation(len(pairs))
        self.heldout = [pairs[i] for i in sorted(order[:n_heldout])]
        self.train = [pairs[i] for i in sorted(order[n_heldout:])]
        encoded = [self._encode(s, t) for s, t in self.train]
        self.batches = BucketedBatches(encoded, batch_size, seed=self.seed)
        self.batch_size = self.batches.batch_size
        self.batches_per_epoch = self.batches.batches_per_epoch
        self.max_source_len = max(len(s) for s, _ in pairs)
        self.max_target_len = max(len(t) for _, t in pairs)

    @classmethod
    def from_file(cls, path, batch_size=64, seed=0, heldout_fraction=0.05, vocab=None):
        return cls(read_pairs(path), batch_size, seed, heldout_fraction, vocab, source=os.fspath(path))

    def _encode(self, s, t):
        try:
            return self.vocab.encode(s), self.vocab.encode(t)
        except ValueError as exc:
            raise DataFileError(f"{self.source or 'data'}: {exc}") from None

    def get_batch(self, step):
        """The Batch of (0-based) training step `step`."""
        return self.batches.get_batch(step)

    def heldout_batches(self, batch_size=None):
        """The held-out pairs as a fixed list of Batch (empty if none are held out)."""
        if not self.heldout:
            return []
        return sorted_batches([self._encode(s, t) for s, t in self.heldout], batch_size or self.batch_size)

    def config(self):
        path = os.path.abspath(self.source) if self.source else None  # resumable from any folder
        return {"name": "file", "path": path, "batch_size": self.batch_size, "seed": self.seed,
                "heldout_fraction": self.heldout_fraction}
