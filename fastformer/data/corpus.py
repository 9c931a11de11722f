"""A parallel corpus on disk -> compact NumPy id arrays.

The corpus is one TSV file (`source<TAB>target` lines) or two parallel files
(line i of one translates line i of the other). Files are read in chunks of
whole lines, so neither the file nor a Python object per line is held beyond
the chunk being tokenized; what stays is, per side, a flat array of ids
(uint16, or int32 for a vocabulary over 65,536) and an int64 array of
offsets, plus each kept pair's line number. Bad input raises DataFileError
naming the file and the line.
"""
import hashlib
import itertools
import os
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from fastformer.data import corpus_cache
from fastformer.data.textfile import DataFileError

CHUNK_BYTES = 1 << 22  # whole lines read, decoded and tokenized together (about 4 MiB)


class CorpusFiles(NamedTuple):
    """The file(s) of a corpus: (tsv,) or (source file, target file)."""

    paths: tuple

    @classmethod
    def of(cls, data=None, src=None, tgt=None):
        """From a TSV path (`data`) or two parallel files (`src`, `tgt`); ValueError otherwise."""
        if data is not None and (src is not None or tgt is not None):
            raise ValueError("give a TSV file (data) or parallel files (src and tgt), not both")
        if data is not None:
            return cls((os.fspath(data),))
        if src is None or tgt is None:
            raise ValueError("parallel files need both src and tgt" if (src or tgt) else
                             "no corpus given: give a TSV file (data) or parallel files (src and tgt)")
        return cls((os.fspath(src), os.fspath(tgt)))

    @property
    def is_tsv(self):
        return len(self.paths) == 1

    def absolute(self):
        return CorpusFiles(tuple(os.path.abspath(p) for p in self.paths))

    def __str__(self):
        return " + ".join(self.paths)


# ----- reading lines ------------------------------------------------------------------


def _open(path):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read the data file ({exc.strerror or exc})") from None


def _decode(path, raw, first):
    """Raw lines (bytes, each with its newline but maybe the last) -> str lines
    without line ends; DataFileError names the first line that is not UTF-8."""
    data = b"".join(raw)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A newline byte never occurs inside a UTF-8 sequence, so counting them finds the line.
        line = first + data.count(b"\n", 0, exc.start)
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataFileError(f"{path}, line {line}: not valid UTF-8 text (byte {column} of the line)") from None
    lines = text.split("\n")
    if data.endswith(b"\n"):
        lines.pop()  # the empty piece after the last newline is not a line
    if "\r" in text:
        lines = [s[:-1] if s.endswith("\r") else s for s in lines]
    if first == 1 and lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]  # a byte-order mark is not text
    return lines


def line_chunks(path, chunk_bytes=None):
    """Yield (number of the first line, list of str lines) over a UTF-8 file,
    about `chunk_bytes` (default CHUNK_BYTES) of whole lines at a time."""
    path, chunk_bytes = os.fspath(path), chunk_bytes or CHUNK_BYTES
    with _open(path) as f:
        first = 1
        while True:
            raw = f.readlines(chunk_bytes)
            if not raw:
                return
            yield first, _decode(path, raw, first)
            first += len(raw)


def count_lines(path):
    """Lines in a file (a last line without a newline counts)."""
    count, last = 0, b"\n"
    with _open(os.fspath(path)) as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def file_sha256(path):
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with _open(os.fspath(path)) as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _split_tsv(path, first, lines):
    """TSV lines -> (sources, targets); a blank line is an empty pair."""
    sources, targets = [], []
    for i, line in enumerate(lines):
        fields = line.split("\t")
        if len(fields) == 2:
            sources.append(fields[0])
            targets.append(fields[1])
        elif not line.strip():
            sources.append("")
            targets.append("")
        else:
            found = "no tab" if len(fields) == 1 else f"{len(fields) - 1} tabs"
            raise DataFileError(f"{path}, line {first + i}: expected 'source<TAB>target', found {found}")
    return sources, targets


def _line_count_error(files):
    counts = [count_lines(p) for p in files.paths]
    return DataFileError(f"the parallel files differ in length: {files.paths[0]} has {counts[0]:,} lines, "
                         f"{files.paths[1]} has {counts[1]:,}")


def pair_chunks(files, chunk_bytes=None):
    """Yield (number of the first line, sources, targets) over a corpus: every
    line is a pair (a blank TSV line an empty one). DataFileError for an
    unreadable file, bad UTF-8, a TSV line without exactly one tab, or parallel
    files of different lengths (naming both and their counts)."""
    if files.is_tsv:
        for first, lines in line_chunks(files.paths[0], chunk_bytes):
            yield (first, *_split_tsv(files.paths[0], first, lines))
        return
    src_path, tgt_path = files.paths
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    with _open(src_path) as fs, _open(tgt_path) as ft:
        first = 1
        while True:
            raw_src = fs.readlines(chunk_bytes)
            raw_tgt = list(itertools.islice(ft, len(raw_src))) if raw_src else ft.readlines(1)
            if len(raw_src) != len(raw_tgt):
                raise _line_count_error(files)
            if not raw_src:
                return
            yield first, _decode(src_path, raw_src, first), _decode(tgt_path, raw_tgt, first)
            first += len(raw_src)


def iter_pairs(files):
    """(source, target) text of every line of a corpus, blank lines included as
    ("", ""): for building a vocabulary or a subword model's training text."""
    for _, sources, targets in pair_chunks(files):
        yield from zip(sources, targets)


def _lines_at(path, lines):
    """The str lines at sorted 1-based numbers `lines`, decoding only those."""
    out, first = [], 1
    with _open(path) as f:
        while len(out) < len(lines):
            raw = f.readlines(CHUNK_BYTES)
            if not raw:
                break
            lo, hi = np.searchsorted(lines, [first, first + len(raw)])
            out += [_decode(path, [raw[n - first]], n)[0] for n in lines[lo:hi].tolist()]
            first += len(raw)
    if len(out) < len(lines):
        raise DataFileError(f"{path}: line {lines[len(out)]} is past the end of the file "
                            f"(has it changed since it was read?)")
    return out


def read_pairs_at(files, lines):
    """(sources, targets): the text of the pairs at 1-based `lines` (sorted,
    distinct), re-read from the file(s); only those lines are decoded."""
    lines = np.asarray(lines, dtype=np.int64)
    if files.is_tsv:
        path = files.paths[0]
        pairs = [_split_tsv(path, n, [line]) for n, line in zip(lines.tolist(), _lines_at(path, lines))]
        return [p[0][0] for p in pairs], [p[1][0] for p in pairs]
    return tuple(_lines_at(p, lines) for p in files.paths)


# ----- tokenizing and filtering -------------------------------------------------------


@dataclass
class FilterReport:
    """What became of a corpus's lines: `kept` pairs, and those dropped for an
    empty side, a side longer than `max_len` tokens (the target counted with
    its eos) or a length ratio above `max_ratio`."""

    files: str
    lines: int
    kept: int
    empty: int
    too_long: int
    bad_ratio: int
    max_len: Optional[int]
    max_ratio: Optional[float]

    def __str__(self):
        dropped = [f"{self.empty:,} with an empty side"]
        if self.max_len is not None:
            dropped.append(f"{self.too_long:,} longer than {self.max_len} tokens")
        if self.max_ratio is not None:
            dropped.append(f"{self.bad_ratio:,} with a length ratio above {self.max_ratio:g}")
        return f"{self.files}: {self.lines:,} lines, kept {self.kept:,} pairs; dropped " + ", ".join(dropped)

    def to_dict(self):
        return dict(self.__dict__)


class TokenizedCorpus:
    """A corpus as id arrays: pair i's source is src_ids[src_offsets[i]:src_offsets[i+1]]
    (no bos/eos), likewise its target; `lines[i]` its 1-based line number.
    Ids are uint16 (int32 for a vocabulary over 65,536), offsets int64."""

    def __init__(self, files, src_ids, src_offsets, tgt_ids, tgt_offsets, lines, report, digests,
                 cache_status="off"):
        self.files, self.report, self.digests = files, report, tuple(digests)
        self.src_ids, self.src_offsets = src_ids, src_offsets
        self.tgt_ids, self.tgt_offsets = tgt_ids, tgt_offsets
        self.lines = lines
        self.cache_status = cache_status  # "off", "hit", "miss", or "rebuilt" (a bad cache file was ignored)

    def __len__(self):
        return len(self.lines)

    @property
    def source_lengths(self):
        return np.diff(self.src_offsets)

    @property
    def target_lengths(self):
        return np.diff(self.tgt_offsets)

    def source(self, i):
        return self.src_ids[self.src_offsets[i]:self.src_offsets[i + 1]]

    def target(self, i):
        return self.tgt_ids[self.tgt_offsets[i]:self.tgt_offsets[i + 1]]

    def arrays(self):
        return {"src_ids": self.src_ids, "src_offsets": self.src_offsets, "tgt_ids": self.tgt_ids,
                "tgt_offsets": self.tgt_offsets, "lines": self.lines}


def id_dtype(tokenizer):
    """The smallest id dtype for the tokenizer: uint16 up to 65,536 symbols (most vocabularies), else int32."""
    return np.uint16 if max(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size) <= 1 << 16 else np.int32


def _compact(ids, size, dtype, path, side):
    """int32 ids -> `dtype`, checked against the vocabulary size first (a tokenizer bug must not wrap around)."""
    if ids.size and (ids.min() < 0 or ids.max() >= size):
        bad = int(ids.max() if ids.max() >= size else ids.min())
        raise ValueError(f"{path}: the tokenizer gave {side} id {bad}, outside its vocabulary of {size}")
    return ids.astype(dtype)


def _encoder(tokenizer, side):
    many = getattr(tokenizer, f"encode_{side}_many", None)
    one = getattr(tokenizer, f"encode_{side}")
    return many if callable(many) else (lambda texts: [one(t) for t in texts]), one


def _encode(encoders, texts, path, first):
    """Texts -> (flat int32 ids, int64 lengths); a tokenizer's ValueError names the line."""
    many, one = encoders
    try:
        encoded = many(texts)
    except ValueError:
        for i, text in enumerate(texts):  # find the line (the batch call does not say)
            try:
                one(text)
            except ValueError as exc:
                raise DataFileError(f"{path}, line {first + i}: {exc}") from None
        raise
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    ids = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32, count=int(lengths.sum()))
    return ids, lengths


def _offsets(lengths):
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def check_filters(max_len, max_ratio):
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer))
                                or max_len < 2):
        raise ValueError(f"max_len must be an integer >= 2 (a target token and its eos) or None, got {max_len!r}")
    if max_ratio is not None and (isinstance(max_ratio, bool) or not isinstance(max_ratio, (int, float))
                                  or not max_ratio >= 1):
        raise ValueError(f"max_ratio must be a number >= 1 or None, got {max_ratio!r}")


def tokenize_corpus(files, tokenizer, max_len=None, max_ratio=None, digests=()):
    """Read, tokenize and filter a corpus in one streaming pass -> TokenizedCorpus.

    Dropped: pairs with a side of no tokens; with max_len, a source of more
    than max_len tokens or a target of more than max_len - 1 (it gets an eos);
    with max_ratio, pairs whose longer side has more than max_ratio times the
    tokens of the shorter one. DataFileError for an empty file.
    """
    check_filters(max_len, max_ratio)
    encoders = [_encoder(tokenizer, "source"), _encoder(tokenizer, "target")]
    dtype = id_dtype(tokenizer)
    paths = files.paths * 2 if files.is_tsv else files.paths
    parts = {"src_ids": [], "src_len": [], "tgt_ids": [], "tgt_len": [], "lines": []}
    counts = dict(lines=0, kept=0, empty=0, too_long=0, bad_ratio=0)
    for first, sources, targets in pair_chunks(files):
        src_ids, src_len = _encode(encoders[0], sources, paths[0], first)
        tgt_ids, tgt_len = _encode(encoders[1], targets, paths[1], first)
        empty = (src_len == 0) | (tgt_len == 0)
        too_long = np.zeros_like(empty)
        if max_len is not None:
            too_long = ~empty & ((src_len > max_len) | (tgt_len + 1 > max_len))
        bad_ratio = np.zeros_like(empty)
        if max_ratio is not None:
            shorter, longer = np.minimum(src_len, tgt_len), np.maximum(src_len, tgt_len)
            bad_ratio = ~empty & ~too_long & (longer > max_ratio * shorter)
        keep = ~(empty | too_long | bad_ratio)
        counts["lines"] += len(sources)
        counts["empty"] += int(empty.sum())
        counts["too_long"] += int(too_long.sum())
        counts["bad_ratio"] += int(bad_ratio.sum())
        counts["kept"] += int(keep.sum())
        parts["src_ids"].append(_compact(src_ids[np.repeat(keep, src_len)], tokenizer.src_vocab_size, dtype,
                                         paths[0], "source"))
        parts["tgt_ids"].append(_compact(tgt_ids[np.repeat(keep, tgt_len)], tokenizer.tgt_vocab_size, dtype,
                                         paths[1], "target"))
        parts["src_len"].append(src_len[keep])
        parts["tgt_len"].append(tgt_len[keep])
        parts["lines"].append(first + np.flatnonzero(keep).astype(np.int64))
    if counts["lines"] == 0:
        raise DataFileError(f"{files}: the data file is empty" if files.is_tsv else
                            f"{files}: the data files are empty")
    if counts["empty"] == counts["lines"]:
        raise DataFileError(f"{files}: no pairs: all {counts['lines']:,} lines are blank or have an empty side")
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    report = FilterReport(files=str(files), max_len=max_len,
                          max_ratio=None if max_ratio is None else float(max_ratio), **counts)
    return TokenizedCorpus(files, joined["src_ids"].astype(dtype, copy=False), _offsets(joined["src_len"]),
                           joined["tgt_ids"].astype(dtype, copy=False), _offsets(joined["tgt_len"]),
                           joined["lines"], report, digests)


def load_corpus(files, tokenizer, max_len=None, max_ratio=None, cache_dir=None):
    """tokenize_corpus, through a cache in `cache_dir` (when given) keyed by the
    files' SHA-256, the tokenizer's fingerprint() and the filters: a second
    call loads the arrays instead of re-tokenizing; a cache file that does not
    check out is ignored and rewritten."""
    check_filters(max_len, max_ratio)
    digests = tuple(file_sha256(p) for p in files.paths)
    if cache_dir is None:
        return tokenize_corpus(files, tokenizer, max_len, max_ratio, digests)
    key = corpus_cache.cache_key(files, digests, tokenizer, max_len, max_ratio)
    cached, status = corpus_cache.load(cache_dir, key, tokenizer, max_len, max_ratio, id_dtype(tokenizer))
    if cached is not None:
        arrays, counts = cached
        report = FilterReport(files=str(files), max_len=max_len,
                              max_ratio=None if max_ratio is None else float(max_ratio), **counts)
        return TokenizedCorpus(files, **arrays, report=report, digests=digests, cache_status="hit")
    corpus = tokenize_corpus(files, tokenizer, max_len, max_ratio, digests)
    corpus_cache.save(cache_dir, key, corpus)
    corpus.cache_status = status
    return corpus
