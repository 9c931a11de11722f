"""A parallel corpus as the Trainer's data: token-budget training batches,
a validation set (a given file, or a seeded hold-out), and the settings to
rebuild both exactly on --resume."""

import numpy as np

from fastformer.data.corpus import CorpusFiles, file_sha256, load_corpus, read_pairs_at, tokenize_corpus
from fastformer.data.textfile import DataFileError
from fastformer.data.token_budget import TokenBudgetBatches, check_count, fixed_budget_batches

CONFIG_NAME = "corpus"


def _files(spec):
    """A config or argument value -> CorpusFiles: a path (TSV) or a [source, target] pair."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        return CorpusFiles.of(src=spec[0], tgt=spec[1]) if len(spec) == 2 else CorpusFiles.of(data=spec[0])
    return CorpusFiles.of(data=spec)


def _spec(files):
    paths = files.absolute().paths  # resumable from any folder
    return paths[0] if files.is_tsv else list(paths)


class TranslationData:
    """Training pairs from `data` (TSV) or `src` + `tgt` (parallel files),
    tokenized once with `tokenizer` (cached in `cache_dir` when given) and
    filtered (see fastformer.data.corpus.tokenize_corpus: empty sides, max_len,
    max_ratio; `report` says how many went), then served as TokenBudgetBatches
    of at most `max_tokens` padded tokens (and `max_batch` pairs).

    Validation: `valid` (a TSV path, or a (source, target) pair of paths), or
    else a hold-out of heldout_fraction of the kept pairs (at most
    max_heldout; both ignored when `valid` is given), drawn with
    default_rng(seed) and left out of training.
    Validation pairs are never dropped for their length; pairs with an empty
    side are (counted in `valid_report`). `valid_sources` /
    `valid_references` are their raw text (for BLEU on detokenized output),
    `heldout_batches()` their teacher-forced loss batches.
    """

    def __init__(self, tokenizer, data=None, src=None, tgt=None, valid=None, max_tokens=4096, max_len=256,
                 max_ratio=None, seed=0, heldout_fraction=0.05, max_heldout=1000, max_batch=None,
                 cache_dir=None):
        if not 0.0 <= heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction!r}")
        if isinstance(max_heldout, bool) or not isinstance(max_heldout, (int, np.integer)) or max_heldout < 0:
            raise ValueError(f"max_heldout must be a non-negative integer, got {max_heldout!r}")
        check_count("max_tokens", max_tokens, optional=False)  # before the corpus is read, not after
        check_count("max_batch", max_batch)
        self.vocab = tokenizer
        self.files = CorpusFiles.of(data, src, tgt)
        self.valid_files = _files(valid)
        self.max_tokens, self.max_len, self.max_ratio = max_tokens, max_len, max_ratio
        self.seed, self.max_batch = int(seed), max_batch
        self.heldout_fraction, self.max_heldout = float(heldout_fraction), int(max_heldout)
        self.corpus = load_corpus(self.files, tokenizer, max_len, max_ratio, cache_dir)
        self.report = self.corpus.report
        if len(self.corpus) == 0:
            raise DataFileError(f"no training pairs are left after filtering ({self.report})")
        specials = (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)
        train = np.arange(len(self.corpus), dtype=np.int64)
        if self.valid_files is not None:
            self.valid = tokenize_corpus(self.valid_files, tokenizer)  # no length filter
            self.valid_indices = np.arange(len(self.valid), dtype=np.int64)
            text_files = self.valid_files
        else:
            held = self._heldout_count(len(self.corpus))
            chosen = np.sort(np.random.default_rng(self.seed).permutation(len(self.corpus))[:held])
            train = np.setdiff1d(train, chosen, assume_unique=True)
            self.valid, self.valid_indices, text_files = self.corpus, chosen, self.files
        self.valid_report = self.valid.report if self.valid_files is not None else None
        self.valid_sources, self.valid_references = read_pairs_at(text_files, self.valid.lines[self.valid_indices])
        self.train_indices = train
        self.batches = TokenBudgetBatches(self.corpus, max_tokens, seed=self.seed, indices=train,
                                          max_batch=max_batch, pad_id=specials[0], bos_id=specials[1],
                                          eos_id=specials[2])
        self.batches_per_epoch = self.batches.batches_per_epoch
        # Token-budget batches have no fixed size: the trainer plans micro-batches for any size.
        self.batch_size = None
        self.max_batch_pairs = self.batches.batch_size
        self._specials, self._heldout = specials, None
        lengths = [self.corpus.source_lengths[train], self.valid.source_lengths[self.valid_indices]]
        self.max_source_len = int(max(x.max(initial=0) for x in lengths))
        lengths = [self.corpus.target_lengths[train], self.valid.target_lengths[self.valid_indices]]
        self.max_target_len = int(max(x.max(initial=0) for x in lengths))

    def _heldout_count(self, n):
        if self.heldout_fraction == 0 or n < 2:
            return 0
        return min(max(1, int(round(n * self.heldout_fraction))), self.max_heldout, n - 1)

    @property
    def cache_status(self):
        """"hit", "miss", "rebuilt" (a bad cache file was replaced) or "off" (no cache_dir)."""
        return self.corpus.cache_status

    @property
    def valid_over_max_len(self):
        """Validation pairs longer than max_len (kept; the model's max_len covers them)."""
        if self.max_len is None:
            return 0
        src = self.valid.source_lengths[self.valid_indices]
        tgt = self.valid.target_lengths[self.valid_indices]
        return int(((src > self.max_len) | (tgt + 1 > self.max_len)).sum())

    def get_batch(self, step):
        """The Batch of (0-based) training step `step`: a pure function of (seed, step)."""
        return self.batches.get_batch(step)

    def heldout_batches(self, max_tokens=None):
        """The validation pairs as a fixed list of Batch of at most `max_tokens`
        (default: the training budget) padded tokens, a longer pair alone."""
        if not len(self.valid_indices):
            return []
        if max_tokens is not None:
            return fixed_budget_batches(self.valid, max_tokens, self.valid_indices, *self._specials)
        if self._heldout is None:
            self._heldout = fixed_budget_batches(self.valid, self.max_tokens, self.valid_indices, *self._specials)
        return self._heldout

    def describe(self):
        """A few lines for the command line: the filter report, batches, validation."""
        lines = [str(self.report) + (" (tokenized ids from the cache)" if self.cache_status == "hit" else "")]
        lines.append(f"{len(self.train_indices):,} training pairs in {self.batches_per_epoch:,} batches per "
                     f"epoch of at most {self.max_tokens:,} tokens (up to {self.max_batch_pairs:,} pairs)")
        if self.valid_files is not None:
            lines.append(f"validation: {self.valid_report}")
        else:
            lines.append(f"validation: {len(self.valid_indices):,} pairs held out of {self.files}")
        if self.valid_over_max_len:
            lines.append(f"note: {self.valid_over_max_len:,} validation pairs are longer than {self.max_len} "
                         f"tokens; kept")
        return "\n".join(lines)

    def config(self):
        """JSON-able settings that rebuild this data (with the same tokenizer): from_config."""
        return {"name": CONFIG_NAME, "data": _spec(self.files), "sha256": list(self.corpus.digests),
                "valid": None if self.valid_files is None else _spec(self.valid_files),
                "max_tokens": self.max_tokens, "max_len": self.max_len, "max_ratio": self.max_ratio,
                "max_batch": self.max_batch, "seed": self.seed, "heldout_fraction": self.heldout_fraction,
                "max_heldout": self.max_heldout}

    @classmethod
    def from_config(cls, config, tokenizer, cache_dir=None):
        """The data `config()` described. DataFileError if a training file's
        content changed since (the run could not continue the same batches)."""
        if not isinstance(config, dict) or config.get("name") != CONFIG_NAME:
            raise ValueError(f"not a {CONFIG_NAME!r} data config: {config!r}")
        files = _files(config["data"])
        saved = config.get("sha256")
        if saved is not None and list(saved) != [file_sha256(p) for p in files.paths]:
            raise DataFileError(f"{files}: the training data changed since the checkpoint was written "
                                f"(its SHA-256 differs); resuming needs the same file(s)")
        return cls(tokenizer, data=files.paths[0] if files.is_tsv else None,
                   src=None if files.is_tsv else files.paths[0], tgt=None if files.is_tsv else files.paths[1],
                   valid=config["valid"], max_tokens=config["max_tokens"], max_len=config["max_len"],
                   max_ratio=config["max_ratio"], seed=config["seed"], heldout_fraction=config["heldout_fraction"],
                   max_heldout=config["max_heldout"], max_batch=config["max_batch"], cache_dir=cache_dir)
