"""Parallel corpora: reading (TSV, parallel files, bad input with file and
line), tokenizing into id arrays, filtering with counts, and the cache."""
import json

import numpy as np
import pytest

from fastformer.data import CorpusFiles, DataFileError, Vocabulary, iter_pairs, load_corpus
from fastformer.data import corpus as corpus_module
from fastformer.data import corpus_cache
from fastformer.data.corpus import count_lines, read_pairs_at, tokenize_corpus

VOCAB = Vocabulary("abcdefghij xyz")


class CountingTokenizer:
    """The char vocabulary with the batch calls, counting the texts it encodes."""

    def __init__(self, vocab=VOCAB):
        self.vocab, self.encoded = vocab, 0
        for name in ("kind", "pad_id", "bos_id", "eos_id", "src_vocab_size", "tgt_vocab_size", "fingerprint",
                     "encode_source", "encode_target"):
            setattr(self, name, getattr(vocab, name))

    def encode_source_many(self, texts):
        self.encoded += len(texts)
        return [self.vocab.encode_source(t) for t in texts]

    def encode_target_many(self, texts):
        self.encoded += len(texts)
        return [self.vocab.encode_target(t) for t in texts]


def write(path, data):
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def tsv(tmp_path, text, name="train.tsv"):
    return CorpusFiles.of(write(tmp_path / name, text))


def pairs_of(corpus, vocab=VOCAB):
    return [(vocab.decode(corpus.source(i)), vocab.decode(corpus.target(i))) for i in range(len(corpus))]


def random_lines(n, seed=0, lo=0, hi=12):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = "".join(rng.choice(list("abcdefghij "), rng.integers(lo, hi)))
        out.append((s, s[::-1].replace(" ", "x") + "z"))
    return out


# ----- reading ------------------------------------------------------------------------------


def test_tsv_lines_become_id_arrays(tmp_path):
    files = tsv(tmp_path, "ab\tba\r\n\nabc\tcba\n   \nxyz\tzyx")  # CRLF, blank lines, no final newline
    corpus = tokenize_corpus(files, VOCAB)
    assert pairs_of(corpus) == [("ab", "ba"), ("abc", "cba"), ("xyz", "zyx")]
    assert corpus.lines.tolist() == [1, 3, 5]
    assert corpus.src_ids.dtype == np.uint16 and corpus.src_offsets.dtype == np.int64
    assert corpus.source_lengths.tolist() == [2, 3, 3]
    assert corpus.source(1).tolist() == VOCAB.encode("abc")
    assert corpus.report.lines == 5 and corpus.report.kept == 3 and corpus.report.empty == 2
    assert read_pairs_at(files, corpus.lines) == (["ab", "abc", "xyz"], ["ba", "cba", "zyx"])


def test_a_byte_order_mark_is_not_text(tmp_path):
    corpus = tokenize_corpus(tsv(tmp_path, "\ufeffab\tba\n"), VOCAB)
    assert pairs_of(corpus) == [("ab", "ba")]


def test_parallel_files_equal_the_tsv(tmp_path):
    lines = random_lines(300)
    files = tsv(tmp_path, "".join(f"{s}\t{t}\n" for s, t in lines))
    src = write(tmp_path / "train.src", "".join(s + "\n" for s, _ in lines))
    tgt = write(tmp_path / "train.tgt", "".join(t + "\n" for _, t in lines).rstrip("\n"))  # no final newline
    a, b = tokenize_corpus(files, VOCAB), tokenize_corpus(CorpusFiles.of(src=src, tgt=tgt), VOCAB)
    for name, value in a.arrays().items():
        np.testing.assert_array_equal(getattr(b, name), value, err_msg=name)
    assert a.report.to_dict() | {"files": ""} == b.report.to_dict() | {"files": ""}
    assert list(iter_pairs(CorpusFiles.of(src=src, tgt=tgt))) == lines
    chosen = a.lines[::7]
    assert read_pairs_at(files, chosen) == read_pairs_at(CorpusFiles.of(src=src, tgt=tgt), chosen)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_reading_is_exact(tmp_path, monkeypatch, chunk):
    lines = random_lines(200, seed=1)
    text = "".join(f"{s}\t{t}\n" for s, t in lines)
    whole = tokenize_corpus(tsv(tmp_path, text), VOCAB)
    monkeypatch.setattr(corpus_module, "CHUNK_BYTES", chunk)
    src = write(tmp_path / "a.src", "".join(s + "\n" for s, _ in lines))
    tgt = write(tmp_path / "a.tgt", "".join(t + "\n" for _, t in lines))
    for files in (tsv(tmp_path, text), CorpusFiles.of(src=src, tgt=tgt)):
        chunked = tokenize_corpus(files, VOCAB)
        for name, value in whole.arrays().items():
            np.testing.assert_array_equal(getattr(chunked, name), value, err_msg=name)
        picked = chunked.lines[::5]
        assert read_pairs_at(files, picked) == ([lines[i - 1][0] for i in picked], [lines[i - 1][1] for i in picked])


@pytest.mark.parametrize("chunk", [None, 3])
def test_bad_utf8_names_file_and_line(tmp_path, monkeypatch, chunk):
    if chunk:
        monkeypatch.setattr(corpus_module, "CHUNK_BYTES", chunk)
    path = write(tmp_path / "bad.tsv", b"ab\tba\nabc\tcba\nx\xff\xfey\tyx\nab\tba\n")
    with pytest.raises(DataFileError, match=r"bad\.tsv, line 3: not valid UTF-8"):
        tokenize_corpus(CorpusFiles.of(path), VOCAB)
    src = write(tmp_path / "p.src", "a\nb\nc\nd\n")
    tgt = write(tmp_path / "p.tgt", b"a\nb\nc\n\xc3(\n")
    with pytest.raises(DataFileError, match=r"p\.tgt, line 4: not valid UTF-8"):
        tokenize_corpus(CorpusFiles.of(src=src, tgt=tgt), VOCAB)


@pytest.mark.parametrize("content, message", [
    ("ab\tba\nabba\n", r"line 2: expected 'source<TAB>target', found no tab"),
    ("ab\tba\nab\tba\tab\n", r"line 2: expected 'source<TAB>target', found 2 tabs"),
    ("", r"train\.tsv: the data file is empty"),
    ("\n\n  \n", r"train\.tsv: no pairs: all 3 lines are blank or have an empty side"),
    ("ab\tba\nab\tbQ\n", r"train\.tsv, line 2: character 'Q' is not in the vocabulary"),
])
def test_bad_tsv_names_file_and_line(tmp_path, content, message):
    with pytest.raises(DataFileError, match=message):
        tokenize_corpus(tsv(tmp_path, content), VOCAB)
    with pytest.raises(DataFileError, match=message):  # the cached path reads the same
        load_corpus(tsv(tmp_path, content), CountingTokenizer(), cache_dir=tmp_path / "cache")


def test_missing_files(tmp_path):
    with pytest.raises(DataFileError, match=r"missing\.tsv: cannot read"):
        tokenize_corpus(CorpusFiles.of(tmp_path / "missing.tsv"), VOCAB)
    with pytest.raises(DataFileError, match="cannot read"):
        tokenize_corpus(CorpusFiles.of(tmp_path), VOCAB)  # a folder
    src = write(tmp_path / "a.src", "ab\n")
    with pytest.raises(DataFileError, match=r"b\.tgt: cannot read"):
        tokenize_corpus(CorpusFiles.of(src=src, tgt=tmp_path / "b.tgt"), VOCAB)


@pytest.mark.parametrize("src_lines, tgt_lines", [(5, 4), (4, 5), (0, 2), (3, 0)])
def test_parallel_files_of_different_lengths(tmp_path, src_lines, tgt_lines):
    src = write(tmp_path / "c.src", "ab\n" * src_lines)
    tgt = write(tmp_path / "c.tgt", "ba\n" * tgt_lines)
    message = rf"c\.src has {src_lines} lines, .*c\.tgt has {tgt_lines}"
    with pytest.raises(DataFileError, match=message):
        tokenize_corpus(CorpusFiles.of(src=src, tgt=tgt), VOCAB)
    assert count_lines(src) == src_lines


def test_empty_parallel_files(tmp_path):
    files = CorpusFiles.of(src=write(tmp_path / "e.src", ""), tgt=write(tmp_path / "e.tgt", ""))
    with pytest.raises(DataFileError, match=r"e\.src \+ .*e\.tgt: the data files are empty"):
        tokenize_corpus(files, VOCAB)


def test_corpus_files_arguments():
    with pytest.raises(ValueError, match="not both"):
        CorpusFiles.of("a.tsv", src="a", tgt="b")
    with pytest.raises(ValueError, match="both src and tgt"):
        CorpusFiles.of(src="a")
    with pytest.raises(ValueError, match="no corpus given"):
        CorpusFiles.of()


# ----- filters ------------------------------------------------------------------------------


def test_filters_and_their_counts(tmp_path):
    lines = ["abcd\tabc",      # kept: target 3 + eos = 4 = max_len
             "abcde\tab",      # source 5 > 4
             "ab\tabcd",       # target 4 + eos = 5 > 4
             "\tab",           # empty source
             "ab\t",           # empty target
             "a\tabc",         # ratio 3
             "a\tabcd",        # too long (counted there, not as a ratio)
             "ab\ta",          # ratio 2
             "abcd\ta"]        # ratio 4 > 3
    files = tsv(tmp_path, "\n".join(lines))
    corpus = tokenize_corpus(files, VOCAB, max_len=4, max_ratio=3)
    assert pairs_of(corpus) == [("abcd", "abc"), ("a", "abc"), ("ab", "a")]
    assert corpus.lines.tolist() == [1, 6, 8]
    r = corpus.report
    assert (r.lines, r.kept, r.empty, r.too_long, r.bad_ratio) == (9, 3, 2, 3, 1)
    assert str(r).endswith("9 lines, kept 3 pairs; dropped 2 with an empty side, 3 longer than 4 tokens, "
                           "1 with a length ratio above 3")
    plain = tokenize_corpus(files, VOCAB)
    assert (plain.report.kept, plain.report.too_long, plain.report.bad_ratio) == (7, 0, 0)
    assert str(plain.report).endswith("kept 7 pairs; dropped 2 with an empty side")


@pytest.mark.parametrize("kw, message", [({"max_len": 1}, "max_len"), ({"max_len": 3.5}, "max_len"),
                                         ({"max_ratio": 0.5}, "max_ratio"), ({"max_ratio": "2"}, "max_ratio")])
def test_bad_filter_settings(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        tokenize_corpus(tsv(tmp_path, "ab\tba\n"), VOCAB, **kw)


# ----- the cache ----------------------------------------------------------------------------


def corpus_text(n=400, seed=0):
    return "".join(f"{s}\t{t}\n" for s, t in random_lines(n, seed, lo=1))


def test_cache_hit_loads_without_tokenizing(tmp_path):
    files = tsv(tmp_path, corpus_text())
    tok = CountingTokenizer()
    first = load_corpus(files, tok, max_len=10, cache_dir=tmp_path / "cache")
    assert first.cache_status == "miss" and tok.encoded == 2 * 400
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".npz"
    second = load_corpus(files, tok, max_len=10, cache_dir=tmp_path / "cache")
    assert second.cache_status == "hit" and tok.encoded == 2 * 400  # nothing tokenized again
    for name, value in first.arrays().items():
        assert getattr(second, name).dtype == value.dtype
        np.testing.assert_array_equal(getattr(second, name), value, err_msg=name)
    assert second.report == first.report and second.digests == first.digests
    assert load_corpus(files, tok, max_len=10).cache_status == "off"


def test_cache_is_keyed_by_content_tokenizer_and_filters(tmp_path):
    cache = tmp_path / "cache"
    files = tsv(tmp_path, corpus_text())
    load_corpus(files, CountingTokenizer(), max_len=10, cache_dir=cache)
    other_vocab = CountingTokenizer(Vocabulary("abcdefghij xyzw"))
    assert load_corpus(files, other_vocab, max_len=10, cache_dir=cache).cache_status == "miss"
    assert load_corpus(files, CountingTokenizer(), max_len=11, cache_dir=cache).cache_status == "miss"
    assert load_corpus(files, CountingTokenizer(), max_len=10, max_ratio=2, cache_dir=cache).cache_status == "miss"
    moved = CorpusFiles.of(write(tmp_path / "moved.tsv", (tmp_path / "train.tsv").read_text()))
    assert load_corpus(moved, CountingTokenizer(), max_len=10, cache_dir=cache).cache_status == "hit"
    changed = tsv(tmp_path, corpus_text(seed=5))
    again = load_corpus(changed, CountingTokenizer(), max_len=10, cache_dir=cache)
    assert again.cache_status == "miss"
    assert pairs_of(again) == pairs_of(tokenize_corpus(changed, VOCAB, max_len=10))
    as_parallel = CorpusFiles.of(src=write(tmp_path / "x.src", "ab\n"), tgt=write(tmp_path / "x.tgt", "ba\n"))
    as_tsv = tsv(tmp_path, "ab\n", name="x.tsv")  # same bytes as x.src: another layout, another key
    load_corpus(as_parallel, CountingTokenizer(), cache_dir=cache)
    with pytest.raises(DataFileError, match="no tab"):
        load_corpus(as_tsv, CountingTokenizer(), cache_dir=cache)


def _cache_file(tmp_path):
    (path,) = (tmp_path / "cache").iterdir()
    return path


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "garbage": lambda p: p.write_bytes(b"not a zip file at all"),
    "empty": lambda p: p.write_bytes(b""),
    "flipped byte": lambda p: p.write_bytes(p.read_bytes()[:300] + bytes([p.read_bytes()[300] ^ 0xFF])
                                            + p.read_bytes()[301:]),
    "other key": lambda p: _rewrite(p, key=np.frombuffer(b'{"format": "x"}', dtype=np.uint8)),
    "id out of range": lambda p: _rewrite(p, src_ids=np.full_like(np.load(p)["src_ids"], 999)),
    "bad offsets": lambda p: _rewrite(p, src_offsets=np.load(p)["src_offsets"][::-1].copy()),
    "wrong dtype": lambda p: _rewrite(p, tgt_ids=np.load(p)["tgt_ids"].astype(np.int64)),
    "too long": lambda p: _rewrite(p, src_offsets=np.r_[0, np.full(400, 11)].cumsum(),
                                   src_ids=np.ones(4400, dtype=np.uint16)),
    "missing array": lambda p: _rewrite(p, lines=None),
    "wrong counts": lambda p: _rewrite(p, report=np.frombuffer(json.dumps(
        {"lines": 1, "kept": 1, "empty": 0, "too_long": 0, "bad_ratio": 0}).encode(), dtype=np.uint8)),
    "pickled object": lambda p: _rewrite(p, lines=np.array([object()] * 400, dtype=object)),
}


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_cache_is_ignored_and_rebuilt(tmp_path, how):
    files = tsv(tmp_path, corpus_text())
    fresh = load_corpus(files, CountingTokenizer(), max_len=10, cache_dir=tmp_path / "cache")
    path = _cache_file(tmp_path)
    if how == "missing array":
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files if k != "lines"}
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    else:
        CORRUPTIONS[how](path)
    tok = CountingTokenizer()
    rebuilt = load_corpus(files, tok, max_len=10, cache_dir=tmp_path / "cache")
    assert rebuilt.cache_status == "rebuilt" and tok.encoded == 800
    for name, value in fresh.arrays().items():
        np.testing.assert_array_equal(getattr(rebuilt, name), value, err_msg=name)
    assert load_corpus(files, tok, max_len=10, cache_dir=tmp_path / "cache").cache_status == "hit"
    assert tok.encoded == 800


def test_cache_write_is_atomic_and_leaves_no_temp_file(tmp_path, monkeypatch):
    files = tsv(tmp_path, corpus_text())
    load_corpus(files, CountingTokenizer(), cache_dir=tmp_path / "cache")
    good = _cache_file(tmp_path).read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(corpus_cache.os, "replace", crash)
    corpus = tokenize_corpus(files, VOCAB)
    key = corpus_cache.cache_key(files, corpus.digests or ("x",), VOCAB, None, None)
    with pytest.raises(OSError, match="disk full"):
        corpus_cache.save(tmp_path / "cache", key, corpus)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [_cache_file(tmp_path).name]
    assert _cache_file(tmp_path).read_bytes() == good


# ----- a subword tokenizer ------------------------------------------------------------------


class SentencePieceStandIn:
    """The tokenizer interface over a sentencepiece model, as the test needs it."""

    kind, pad_id, bos_id, eos_id = "sentencepiece", 0, 1, 2

    def __init__(self, model_proto):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.src_vocab_size = self.tgt_vocab_size = self.sp.get_piece_size()
        self._fingerprint = __import__("hashlib").sha256(model_proto).hexdigest()

    def fingerprint(self):
        return self._fingerprint

    def encode_source(self, text):
        return self.sp.encode(text)

    encode_target = encode_source

    def encode_source_many(self, texts):
        return self.sp.encode(list(texts))

    encode_target_many = encode_source_many


def test_sentencepiece_corpus(tmp_path):
    import io

    spm = pytest.importorskip("sentencepiece")
    rng = np.random.default_rng(0)
    words = ["zwei", "drei", "vier", "fünf", "sechs", "Uhr", "Minuten", "nach", "vor", "halb"]
    lines = [" ".join(rng.choice(words, rng.integers(1, 6))) for _ in range(300)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=30,
                                   pad_id=0, bos_id=1, eos_id=2, unk_id=3, minloglevel=2)
    tok = SentencePieceStandIn(model.getvalue())
    files = tsv(tmp_path, "".join(f"{a}\t{b}\n" for a, b in zip(lines, lines[::-1])))
    corpus = load_corpus(files, tok, max_len=16, cache_dir=tmp_path / "cache")
    kept = [i for i, (a, b) in enumerate(zip(lines, lines[::-1]))
            if len(tok.encode_source(a)) <= 16 and len(tok.encode_target(b)) + 1 <= 16]
    assert corpus.lines.tolist() == [i + 1 for i in kept]
    for j, i in enumerate(kept):
        assert corpus.source(j).tolist() == tok.encode_source(lines[i])
        assert tok.sp.decode(corpus.target(j).tolist()) == lines[::-1][i]
    assert load_corpus(files, tok, max_len=16, cache_dir=tmp_path / "cache").cache_status == "hit"


def test_a_tokenizer_id_outside_its_vocabulary(tmp_path):
    class Broken(CountingTokenizer):
        def encode_target_many(self, texts):
            return [[self.tgt_vocab_size] for _ in texts]  # one past the end: would wrap in uint16 unchecked

    with pytest.raises(ValueError, match=r"train\.tsv: the tokenizer gave target id 17, outside its vocabulary"):
        tokenize_corpus(tsv(tmp_path, "ab\tba\n"), Broken())


def test_large_vocabularies_get_int32_ids(tmp_path):
    big = Vocabulary([chr(0x10000 + i) for i in range(70000)])  # past the surrogates
    corpus = tokenize_corpus(tsv(tmp_path, f"{chr(0x10000)}{chr(0x10000 + 69999)}\t{chr(0x10001)}\n"), big)
    assert corpus.src_ids.dtype == np.int32 and corpus.source(0).tolist() == [3, 70002]
